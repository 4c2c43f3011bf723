"""The matching engine: many accounts, many symbols, Binance spot semantics.

One call (submit, cancel, amend, set_last_price) is one atomic step: it validates
completely (raising a ``bot4.sim.errors.BinanceError`` and changing nothing), then
applies, and returns the execution reports it caused, in order.  Everything is
deterministic: ids are counters, time comes from the injected clock, and iteration
orders are fixed, so the same calls give the same reports byte for byte.

Semantics, following Binance spot:

* Price-time priority; a taker trades at the maker's price.
* Funds are locked on acceptance: a sell locks its base quantity, a buy with a price
  locks price x quantity of quote; a market buy locks nothing but must be affordable
  against the book as it stands (the cost is computed by replaying the match).
  Fills release the lock pro rata (a buy at its limit price, so a price improvement
  leaves nothing behind).
* Fees (``bot4.sim.fees``) are charged in the asset received and collected in
  ``fees_collected`` (rebates make it negative), so each asset summed over all
  accounts plus ``fees_collected`` never changes through trading.
* IOC and market remainders expire; FOK trades in full or expires untouched;
  post-only (Binance LIMIT_MAKER) is rejected if it would take; an iceberg shows its
  display quantity and each refill goes to the back of the queue.
* Stops trigger on the symbol's last trade price (stop-loss buy when last >= trigger,
  sell when last <= trigger; take-profit the opposite), checked after each taker has
  finished matching; simultaneous triggers run in order-id order, and cascades are
  followed until nothing else triggers.  A stop that would trigger at once is refused.
* Self-trade prevention uses the taker's mode (the order's, else its account default).

``MatchingEngine`` is ``PyMatchingEngine`` below, or where it is built, a subclass whose
``submit``/``cancel`` run the common requests compiled (``bot4.sim._fastmatch``, see
docs/sim.md).  A change to the rules here, in ``validate`` or in ``MatchingCore``'s
matching and settlement must be made there too; ``tests/test_sim_compiled.py`` compares
the two on random sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from bot4._compiled import compiled
from bot4.core.clock import Clock, TestClock
from bot4.core.enums import OrderSide
from bot4.core.instrument import Instrument
from bot4.oms.account import Account
from bot4.sim.book import OrderBook, PyOrderBook
from bot4.sim.errors import (
    AMEND_INCREASE_MSG,
    CANCEL_INVALID_MSG,
    BinanceError,
    InsufficientBalanceError,
    InvalidApiKey,
    InvalidSymbol,
    MandatoryParameter,
    NewOrderRejected,
    UnknownOrderError,
)
from bot4.sim.fees import FeeSchedule
from bot4.sim.matching_checks import PySymbolState, SymbolState, validate
from bot4.sim.matching_core import AccountState, MatchingCore, PyAccountState
from bot4.sim.matching_types import (
    ExecType,
    ExecutionReport,
    NewOrder,
    PySimOrder,
    SelfTradePrevention,
    SimOrder,
    SimStatus,
    Trade,
)

_BUY: Final = OrderSide.BUY
_NEW_EXEC: Final = ExecType.NEW
_CANCELED_EXEC: Final = ExecType.CANCELED
_CANCELED: Final = SimStatus.CANCELED


class PyMatchingEngine(MatchingCore):
    """The venue: books, balances, fees.  See the module docstring for semantics.

    The pure-Python engine: the fallback where the compiled helpers are not built, and
    the reference they are tested against.  ``MatchingEngine`` is the public name:
    this class, or where the helpers are built, a subclass whose ``submit`` and
    ``cancel`` run the common requests in compiled code (``bot4.sim._fastmatch``)."""

    # the types this engine builds (the compiled engine: the compiled ones)
    book_class: type[OrderBook] = PyOrderBook
    order_class: type[SimOrder] = PySimOrder
    symbol_class: type[SymbolState] = PySymbolState
    account_class: type[AccountState] = PyAccountState

    def __init__(
        self,
        instruments: Iterable[Instrument],
        fees: FeeSchedule | None = None,
        clock: Clock | None = None,
        *,
        default_stp: SelfTradePrevention = SelfTradePrevention.NONE,
        iceberg_parts: int = 10,
        retain_closed: bool = True,
        record_trades: bool = True,
    ) -> None:
        """``iceberg_parts`` is Binance's ICEBERG_PARTS limit; ``retain_closed`` keeps
        closed orders queryable (turn off for long benchmarks); ``record_trades``
        collects every Trade until ``drain_trades``."""
        self.symbols: dict[str, SymbolState] = {
            i.symbol: self.symbol_class(i, self.book_class) for i in instruments
        }
        self.fees = fees if fees is not None else FeeSchedule()
        self.clock: Clock = clock if clock is not None else TestClock(0)
        self.default_stp = default_stp
        self.iceberg_parts = iceberg_parts
        self.retain_closed = retain_closed
        self.record_trades = record_trades
        self.accounts: dict[str, AccountState] = {}
        self.orders: dict[int, SimOrder] = {}  # every order, if retain_closed
        self.open_orders: dict[int, SimOrder] = {}
        self._client_ids: dict[tuple[str, str], int] = {}  # latest order per client id
        self.fees_collected: dict[str, int] = {}
        self.trades: list[Trade] = []
        self._next_id = 1
        self._seq = 0

    # -- accounts ------------------------------------------------------------------------
    def deposit(self, account: str, asset: str, amount_money: int) -> None:
        """Credit (negative: debit) an account's free balance; creates the account."""
        state = self.accounts.get(account)
        if amount_money < 0:
            free = state.account.available(asset) if state is not None else 0
            if free + amount_money < 0:
                raise InsufficientBalanceError()
        if state is None:
            state = self.accounts[account] = self.account_class(self.default_stp)
        state.account.add_free(asset, amount_money)

    def account(self, account: str) -> Account:
        state = self.accounts.get(account)
        if state is None:
            raise InvalidApiKey()
        return state.account

    def set_stp_mode(self, account: str, mode: SelfTradePrevention) -> None:
        """The account's default self-trade prevention mode for orders without one."""
        state = self.accounts.get(account)
        if state is None:
            raise InvalidApiKey()
        state.stp = mode

    # -- queries -------------------------------------------------------------------------
    def book(self, symbol: str) -> OrderBook:
        st = self.symbols.get(symbol)
        if st is None:
            raise InvalidSymbol()
        return st.book

    def last_price(self, symbol: str) -> int:
        """Last trade (or set) price, raw; 0 if none yet."""
        st = self.symbols.get(symbol)
        if st is None:
            raise InvalidSymbol()
        return st.last_price

    def order(
        self, account: str, symbol: str, order_id: int | None = None, client_order_id: str = ""
    ) -> SimOrder:
        """An order by order id or client order id: open ones always, closed ones if
        ``retain_closed`` (for a reused client id, the latest order)."""
        return self._lookup(account, symbol, order_id, client_order_id, open_only=False)

    def open_orders_of(self, account: str, symbol: str | None = None) -> list[SimOrder]:
        state = self.accounts.get(account)
        if state is None:
            raise InvalidApiKey()
        out = [o for o in state.open.values() if symbol is None or o.symbol == symbol]
        return sorted(out, key=lambda o: o.order_id)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last execution report (0 before any)."""
        return self._seq

    def drain_trades(self) -> list[Trade]:
        trades, self.trades = self.trades, []
        return trades

    # -- commands ------------------------------------------------------------------------
    def submit(self, req: NewOrder) -> list[ExecutionReport]:
        """Place an order.  Raises a ``BinanceError`` (nothing changed) if refused."""
        st = self.symbols.get(req.symbol)
        if st is None:
            raise InvalidSymbol()
        acct = self.accounts.get(req.account)
        if acct is None:
            raise InvalidApiKey()
        qty, stp, lock_unit = validate(self, st, acct.account, acct.open, acct.stp, req)
        now = self.clock.now_ns()
        oid = self._next_id
        self._next_id = oid + 1
        cid = req.client_order_id
        if not cid:
            cid = f"sim-{oid}"
            while cid in acct.open:
                cid += "x"
        is_buy = req.side is _BUY
        pair = acct.balances.get(st.symbol)
        if pair is None:  # created only now: a refused order must not add empty balances
            pair = acct.balances[st.symbol] = (
                acct.account.balance(st.base),
                acct.account.balance(st.quote),
            )
        base_bal, quote_bal = pair
        o = self.order_class(oid, req, cid, qty, stp, now, base_bal, quote_bal, lock_unit)
        if lock_unit:
            lock = qty * lock_unit
            bal = quote_bal if is_buy else base_bal
            bal.free -= lock
            bal.locked += lock
            o.locked_money = lock
        acct.open[cid] = o
        self.open_orders[oid] = o
        if self.retain_closed:
            self.orders[oid] = o
            self._client_ids[req.account, cid] = oid
        out = [self._report(o, _NEW_EXEC, now)]
        seq = st.trade_seq
        if o.working:
            self._execute(st, o, now, out)
        else:
            self._park(st, o)
        if st.trade_seq != seq:
            self._run_stops(st, now, out)
        return out

    def process(self, req: NewOrder) -> list[ExecutionReport]:
        """``submit``, with a refusal returned as one REJECTED report (carrying the
        Binance code and message) instead of raised.  The rejection is outside the
        engine's event sequence (``seq`` 0, ``order_id`` -1): nothing changed."""
        try:
            return self.submit(req)
        except BinanceError as exc:
            return [
                ExecutionReport(
                    0, self.clock.now_ns(), ExecType.REJECTED, SimStatus.REJECTED, req.account,
                    req.symbol, -1, req.client_order_id, req.side, req.order_type,
                    req.post_only, req.time_in_force, req.price_raw, req.trigger_raw,
                    req.quantity_raw, 0, 0, 0, reject_code=exc.code, reject_reason=exc.msg,
                )
            ]  # fmt: skip

    def cancel(
        self, account: str, symbol: str, order_id: int | None = None, client_order_id: str = ""
    ) -> list[ExecutionReport]:
        """Cancel an open order by order id or client order id (-2011 if not open)."""
        o = self._lookup(account, symbol, order_id, client_order_id, open_only=True)
        now = self.clock.now_ns()
        st = self.symbols[symbol]
        if o.working:
            book = st.book
            book.remove_record(book.orders[o.order_id])
        else:
            self._unpark(st, o)
        self._release(o)
        o.status = _CANCELED
        o.update_time = now
        self._close(o)
        return [self._report(o, _CANCELED_EXEC, now)]

    def cancel_all(self, account: str, symbol: str) -> list[ExecutionReport]:
        """Cancel every open order of the account on the symbol (-2011 if none)."""
        if symbol not in self.symbols:
            raise InvalidSymbol()
        mine = self.open_orders_of(account, symbol)
        if not mine:
            raise UnknownOrderError()
        out: list[ExecutionReport] = []
        for o in mine:
            out.extend(self.cancel(account, symbol, o.order_id))
        return out

    def amend(
        self,
        account: str,
        symbol: str,
        new_qty_raw: int,
        order_id: int | None = None,
        client_order_id: str = "",
    ) -> list[ExecutionReport]:
        """Reduce an open order's quantity keeping its queue place (Binance's order
        amend keep-priority): ``new_qty_raw`` is the new original quantity."""
        o = self._lookup(account, symbol, order_id, client_order_id, open_only=True)
        st = self.symbols[symbol]
        done = o.executed + o.prevented
        if new_qty_raw >= o.orig_qty:
            raise NewOrderRejected(AMEND_INCREASE_MSG)
        if new_qty_raw <= done:
            raise BinanceError("newQty must be greater than the executed quantity.", -1013)
        st.check_qty(new_qty_raw)
        now = self.clock.now_ns()
        leaves = new_qty_raw - done
        if o.working:
            st.book.modify(o.order_id, o.price, leaves)
        if o.lock_unit:
            give_back = (o.orig_qty - new_qty_raw) * o.lock_unit
            bal = o.quote_bal if o.is_buy else o.base_bal
            bal.locked -= give_back
            bal.free += give_back
            o.locked_money -= give_back
        o.orig_qty = new_qty_raw
        o.update_time = now
        return [self._report(o, ExecType.REPLACED, now)]

    def set_last_price(self, symbol: str, price_raw: int) -> list[ExecutionReport]:
        """Move the symbol's reference/last price (e.g. from replayed market data) and
        fire the stops it triggers."""
        st = self.symbols.get(symbol)
        if st is None:
            raise InvalidSymbol()
        if price_raw <= 0:
            raise MandatoryParameter("price")
        st.last_price = price_raw
        out: list[ExecutionReport] = []
        self._run_stops(st, self.clock.now_ns(), out)
        return out

    # -- internals: lookup and bookkeeping ----------------------------------------------
    def _lookup(
        self,
        account: str,
        symbol: str,
        order_id: int | None,
        client_order_id: str,
        open_only: bool,
    ) -> SimOrder:
        if symbol not in self.symbols:
            raise InvalidSymbol()
        state = self.accounts.get(account)
        if state is None:
            raise InvalidApiKey()
        if order_id is not None:
            o = self.open_orders.get(order_id)
            if o is None and not open_only:
                o = self.orders.get(order_id)
            if client_order_id and o is not None and o.client_order_id != client_order_id:
                o = None
        elif client_order_id:
            o = state.open.get(client_order_id)
            if o is None and not open_only:
                o = self.orders.get(self._client_ids.get((account, client_order_id), 0))
        else:
            raise BinanceError(CANCEL_INVALID_MSG, -2011)
        if o is None or o.account != account or o.symbol != symbol:
            raise UnknownOrderError()
        return o

    # -- state -----------------------------------------------------------------------------
    def snapshot(self) -> tuple[object, ...]:
        """Everything the engine holds, for "nothing changed" comparisons."""
        return (
            sorted(
                (a, s.account.snapshot(), s.stp, sorted(s.open)) for a, s in self.accounts.items()
            ),
            sorted(
                (
                    name,
                    st.book.snapshot(),
                    st.last_price,
                    st.trade_seq,
                    tuple(st.stops_up),
                    tuple(st.stops_down),
                )
                for name, st in self.symbols.items()
            ),
            sorted((oid, o.snapshot()) for oid, o in self.orders.items()),
            sorted(self.open_orders),
            sorted(self._client_ids.items()),
            sorted(self.fees_collected.items()),
            self.fees.snapshot(),
            self._next_id,
            self._seq,
            len(self.trades),
        )


def _compiled_engine() -> type[PyMatchingEngine] | None:
    """The engine with the compiled fast path, or None where it is not built (or
    ``BOT4_PURE_SIM`` is set)."""
    fast = compiled("_fastmatch")
    if fast is None or OrderBook is PyOrderBook:
        return None
    fast.bind(PyMatchingEngine.submit, PyMatchingEngine.cancel)
    fast_order = fast.SimOrder

    class MatchingEngine(fast.FastEngine, PyMatchingEngine):  # type: ignore[misc,name-defined]
        """The venue (see ``PyMatchingEngine``), with compiled ``submit``/``cancel``."""

        book_class = OrderBook
        order_class = fast_order
        symbol_class = SymbolState
        account_class = AccountState

    MatchingEngine.__module__ = __name__
    MatchingEngine.__qualname__ = "MatchingEngine"
    return MatchingEngine


if TYPE_CHECKING:
    MatchingEngine = PyMatchingEngine
else:
    MatchingEngine = _compiled_engine() or PyMatchingEngine
