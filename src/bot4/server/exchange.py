"""The venue around the matching engine: depth update ids, histories, fan-out.

Every command that changes the market (a client's order, the market maker's quote, a
replayed level) goes through ``Exchange``, which forwards it to the engine and then
folds the engine's execution reports into what a Binance venue publishes:

* **Depth update ids.**  Binance's REST depth and its diff stream share one update-id
  sequence per symbol; ccxt refuses a stream that skips an id (ChecksumError).  After
  each command the levels its reports touched are compared with a mirror of the last
  published quantities; if any differ, the symbol's update id advances by one and the
  changed prices are added to every open diff window (``DepthWindow``, one per stream
  speed).  A window emitted at ``u`` covers exactly ``(previous u, u]``, and REST depth
  reads the book at the current id, so snapshot and stream always bridge.
* **Histories.**  Client orders and trades (``orders.AccountHistory``), public trades and
  candles (``market_data``).
* **Fan-out.**  ``user_sink`` receives each client account's reports, ``trade_sink``
  each public trade, ``bbo_sink`` each change of best bid/ask; the stream modules plug in.

* **Write-through.**  ``recorder`` (``command_log.CommandLog.append``) receives every
  accepted command with the time the engine used, before anything about it is published;
  ``replay`` applies such entries again after a crash (see ``command_log``).  The engine
  reads the time through ``PinnedClock``, held at one value for a whole command, so a
  replay at that value reproduces it exactly.

All of it runs on the event loop's one thread, so a command and its bookkeeping are
atomic with respect to every request and stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from bot4.core.clock import Clock
from bot4.core.enums import OrderSide
from bot4.core.numbers import money_to_raw
from bot4.server import command_log as cl
from bot4.server.config import AccountSpec, SymbolSpec
from bot4.server.market_data import SymbolMarket
from bot4.server.orders import AccountHistory
from bot4.sim.book import L_TOTAL, OrderBook
from bot4.sim.fees import FeeSchedule
from bot4.sim.matching import MatchingEngine
from bot4.sim.matching_types import ExecutionReport, NewOrder, SelfTradePrevention, Trade

_BUY: Final = OrderSide.BUY
Level = tuple[int, int]
Bbo = tuple[int, int, int, int]


class DepthWindow:
    """Changed prices since the last emission of one diff stream speed."""

    __slots__ = ("asks", "bids", "first_id")

    def __init__(self) -> None:
        self.first_id = 0  # 0: nothing pending
        self.bids: set[int] = set()
        self.asks: set[int] = set()

    def drain(
        self, book: OrderBook, last_id: int
    ) -> tuple[int, int, list[Level], list[Level]] | None:
        """(U, u, bids, asks) with the current quantities of every changed level, or
        None if nothing changed since the last drain."""
        if not self.first_id:
            return None
        bid_levels, ask_levels = book.bids, book.asks
        bids = [
            (p, bid_levels[p][L_TOTAL] if p in bid_levels else 0)
            for p in sorted(self.bids, reverse=True)
        ]
        asks = [(p, ask_levels[p][L_TOTAL] if p in ask_levels else 0) for p in sorted(self.asks)]
        first = self.first_id
        self.first_id = 0
        self.bids.clear()
        self.asks.clear()
        return first, last_id, bids, asks


class DepthState:
    """One symbol's update id, published level quantities and open diff windows."""

    __slots__ = ("asks", "bbo", "bids", "book", "update_id", "windows")

    def __init__(self, book: OrderBook, update_id: int = 0, n_windows: int = 2) -> None:
        self.book = book
        self.update_id = update_id
        self.bids: dict[int, int] = {p: lvl[L_TOTAL] for p, lvl in book.bids.items()}
        self.asks: dict[int, int] = {p: lvl[L_TOTAL] for p, lvl in book.asks.items()}
        self.windows = tuple(DepthWindow() for _ in range(n_windows))
        self.bbo: Bbo = self.current_bbo()

    def current_bbo(self) -> Bbo:
        b = self.book
        return (b.best_bid() or 0, b.best_bid_qty(), b.best_ask() or 0, b.best_ask_qty())

    def touch(self, levels: Iterable[tuple[bool, int]]) -> bool:
        """Publish the levels whose quantity changed; True if any did."""
        book = self.book
        changed_bids: list[int] = []
        changed_asks: list[int] = []
        for is_buy, price in levels:
            live = book.bids if is_buy else book.asks
            mirror = self.bids if is_buy else self.asks
            lvl = live.get(price)
            qty = lvl[L_TOTAL] if lvl is not None else 0
            if mirror.get(price, 0) == qty:
                continue
            if qty:
                mirror[price] = qty
            else:
                del mirror[price]
            (changed_bids if is_buy else changed_asks).append(price)
        if not changed_bids and not changed_asks:
            return False
        self.update_id = uid = self.update_id + 1
        for w in self.windows:
            if not w.first_id:
                w.first_id = uid
            w.bids.update(changed_bids)
            w.asks.update(changed_asks)
        return True


class PinnedClock:
    """The engine's clock: one value for the duration of a command (``pinned``), the
    wrapped clock otherwise.  Makes a command's time one number that the log records."""

    __slots__ = ("inner", "pinned")

    def __init__(self, inner: Clock) -> None:
        self.inner = inner
        self.pinned = 0

    def now_ns(self) -> int:
        return self.pinned or self.inner.now_ns()


class Exchange:
    """The engine, its accounts and credentials, and the venue's published state."""

    def __init__(
        self,
        symbols: Sequence[SymbolSpec],
        clock: Clock,
        fees: FeeSchedule | None = None,
    ) -> None:
        self.clock = clock
        self.command_clock = PinnedClock(clock)
        self.specs = {s.symbol: s for s in symbols}
        self.instruments = {s.symbol: s.instrument() for s in symbols}
        self.engine = MatchingEngine(
            [s.engine_instrument() for s in symbols],
            fees,
            self.command_clock,
            retain_closed=False,
            record_trades=True,
        )
        self.depth = {s: DepthState(self.engine.book(s)) for s in self.specs}
        self.market = {s: SymbolMarket(s) for s in self.specs}
        self.history: dict[str, AccountHistory] = {}  # client accounts only
        self.internal: set[str] = set()  # market maker, replay: not recorded
        self.update_ms: dict[str, int] = {}
        self.user_sink: Callable[[str, list[ExecutionReport]], None] | None = None
        self.trade_sink: Callable[[Trade], None] | None = None
        self.bbo_sink: Callable[[str, int, Bbo], None] | None = None
        self.recorder: Callable[[list[Any]], None] | None = None

    # -- accounts ------------------------------------------------------------------------
    def open_account(self, spec: AccountSpec) -> None:
        """Create a client account with its deposits (a no-op for an existing one: a
        restored state already holds its balances)."""
        if spec.name not in self.engine.accounts:
            for asset, amount in sorted(spec.balances.items()):
                self.engine.deposit(spec.name, asset, money_to_raw(amount, f"balances.{asset}"))
            if not spec.balances:
                self.engine.deposit(spec.name, "USDT", 0)
        self.history.setdefault(spec.name, AccountHistory())
        if spec.maker_fee is not None or spec.taker_fee is not None:
            maker = spec.maker_fee if spec.maker_fee is not None else spec.taker_fee
            taker = spec.taker_fee if spec.taker_fee is not None else spec.maker_fee
            assert maker is not None and taker is not None
            self.engine.fees.set_override(spec.name, maker, taker)

    def open_internal(self, name: str, assets: Iterable[str], amount_money: int) -> None:
        """An account for a market source: deep pockets, no fees, not recorded."""
        self.internal.add(name)
        if name not in self.engine.accounts:
            for asset in sorted(set(assets)):
                self.engine.deposit(name, asset, amount_money)
        self.engine.fees.set_override(name, 0, 0)

    # -- commands ------------------------------------------------------------------------
    # Each pins the engine's clock for the command (unless a replay holds it already),
    # records the accepted command, then publishes.  A refusal raises before the record.
    def _command(
        self,
        run: Callable[[], list[ExecutionReport]],
        entry: Callable[[int], list[Any]],
        req: NewOrder | None = None,
    ) -> list[ExecutionReport]:
        clock = self.command_clock
        held = clock.pinned
        t = clock.pinned = held or clock.inner.now_ns()
        try:
            reports = run()
        finally:
            clock.pinned = held
        if self.recorder is not None:
            self.recorder(entry(t))
        self._publish(reports, req)
        return reports

    def submit(self, req: NewOrder) -> list[ExecutionReport]:
        """Place an order (raises ``BinanceError`` with nothing changed if refused)."""
        return self._command(lambda: self.engine.submit(req), lambda t: cl.order_entry(t, req), req)

    def cancel(
        self, account: str, symbol: str, order_id: int | None = None, client_order_id: str = ""
    ) -> list[ExecutionReport]:
        return self._command(
            lambda: self.engine.cancel(account, symbol, order_id, client_order_id),
            lambda t: [cl.CANCEL, t, account, symbol, order_id, client_order_id],
        )

    def cancel_all(self, account: str, symbol: str) -> list[ExecutionReport]:
        return self._command(
            lambda: self.engine.cancel_all(account, symbol),
            lambda t: [cl.CANCEL_ALL, t, account, symbol],
        )

    def amend(
        self, account: str, symbol: str, order_id: int, new_qty: int
    ) -> list[ExecutionReport]:
        return self._command(
            lambda: self.engine.amend(account, symbol, new_qty, order_id),
            lambda t: [cl.AMEND, t, account, symbol, order_id, new_qty],
        )

    def set_last_price(self, symbol: str, price_raw: int) -> None:
        self._command(
            lambda: self.engine.set_last_price(symbol, price_raw),
            lambda t: [cl.LAST_PRICE, t, symbol, price_raw],
        )

    def note(self, name: str, value: Any) -> None:
        """Record a market source's own state next to the commands (replay returns the
        last value of each name)."""
        if self.recorder is not None:
            self.recorder([cl.NOTE, 0, name, value])

    def replay(self, entries: list[list[Any]]) -> dict[str, Any]:
        """Apply logged commands again (before anything serves or records), each at its
        logged time; returns the last value of every note.  A logged command that the
        engine refuses now means the log does not belong to this state: ``LogError``."""
        if self.recorder is not None:
            raise cl.LogError("replay before the recorder is attached")
        notes: dict[str, Any] = {}
        clock = self.command_clock
        for entry in entries:
            seq, kind, t, args = entry[0], entry[1], int(entry[2]), entry[3:]
            clock.pinned = t
            try:
                if kind == cl.SUBMIT:
                    self.submit(cl.order_from_entry(args))
                elif kind == cl.CANCEL:
                    self.cancel(args[0], args[1], args[2], args[3])
                elif kind == cl.CANCEL_ALL:
                    self.cancel_all(args[0], args[1])
                elif kind == cl.AMEND:
                    self.amend(args[0], args[1], int(args[2]), int(args[3]))
                elif kind == cl.LAST_PRICE:
                    self.set_last_price(args[0], int(args[1]))
                elif kind == cl.NOTE:
                    notes[args[0]] = args[1]
                else:
                    raise cl.LogError(f"entry {seq}: unknown kind {kind!r}")
            except cl.LogError:
                raise
            except Exception as exc:
                raise cl.LogError(f"entry {seq} ({kind}) does not apply: {exc!r}") from None
            finally:
                clock.pinned = 0
        return notes

    # -- queries -------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ns() // 1_000_000

    def depth_snapshot(self, symbol: str, limit: int) -> tuple[int, list[Level], list[Level]]:
        """(lastUpdateId, bids, asks): the book exactly as of that update id."""
        bids, asks = self.engine.book(symbol).depth(limit)
        return self.depth[symbol].update_id, bids, asks

    # -- bookkeeping -----------------------------------------------------------------------
    def _publish(self, reports: list[ExecutionReport], req: NewOrder | None) -> None:
        touched: dict[str, set[tuple[bool, int]]] = {}
        per_account: dict[str, list[ExecutionReport]] = {}
        internal = self.internal
        new_id = reports[0].order_id if req is not None and reports else -1
        for r in reports:
            if r.price_raw:
                key = r.symbol
                levels = touched.get(key)
                if levels is None:
                    levels = touched[key] = set()
                levels.add((r.side is _BUY, r.price_raw))
            if r.account in internal:
                continue
            hist = self.history.get(r.account)
            if hist is None:
                hist = self.history[r.account] = AccountHistory()
            mine = req if r.order_id == new_id else None
            stp = (
                mine.stp if mine is not None and mine.stp is not None else self.stp_mode(r.account)
            )
            hist.apply(r, mine, stp.value)
            per_account.setdefault(r.account, []).append(r)
            self.update_ms[r.account] = r.ts // 1_000_000
        for symbol, levels in touched.items():
            state = self.depth[symbol]
            if state.touch(levels) and self.bbo_sink is not None:
                bbo = state.current_bbo()
                if bbo != state.bbo:
                    state.bbo = bbo
                    self.bbo_sink(symbol, state.update_id, bbo)
        trades = self.engine.drain_trades()
        for t in trades:
            self.market[t.symbol].add_trade(t)
            if self.trade_sink is not None:
                self.trade_sink(t)
        if self.user_sink is not None:
            for account, rs in per_account.items():
                self.user_sink(account, rs)

    def stp_mode(self, account: str) -> SelfTradePrevention:
        return self.engine.accounts[account].stp
