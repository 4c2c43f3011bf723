"""The matching engine's hot path: matching, settlement, self-trade prevention, stops.

``MatchingEngine`` (``bot4.sim.matching``) is the public API; it validates every command
and then calls into this base class, which assumes valid input and never raises for
business reasons.  The split keeps the part that the benchmark measures in one place,
written for speed: locals over attribute lookups, constants bound at module level,
book records (``bot4.sim.book``) accessed by index, reports built with
``tuple.__new__`` (a named tuple's own constructor is Python code and costs twice as
much).  ``bot4.sim._fastmatch`` holds a compiled translation of ``_execute``, ``_take``
and ``_trade`` (without self-trade prevention): change both together (docs/sim.md).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import TYPE_CHECKING, Final

from bot4.core.enums import LiquiditySide, TimeInForce
from bot4.core.numbers import SCALE
from bot4.oms.account import Account, Balance
from bot4.sim.book import DISPLAY, L_COUNT, L_QUEUE, L_TOTAL, LEVEL, OWNER, QTY, VISIBLE, Record
from bot4.sim.fees import DAY_NS, FeeSchedule
from bot4.sim.matching_checks import SymbolState, fires_up, insufficient, walk
from bot4.sim.matching_types import (
    OPEN_STATUSES,
    ExecType,
    ExecutionReport,
    SelfTradePrevention,
    SimOrder,
    SimStatus,
    Trade,
)

_OPEN: Final = OPEN_STATUSES
_PARTIAL: Final = SimStatus.PARTIALLY_FILLED
_FILLED: Final = SimStatus.FILLED
_EXPIRED: Final = SimStatus.EXPIRED
_IN_MATCH: Final = SimStatus.EXPIRED_IN_MATCH
_STP_NONE: Final = SelfTradePrevention.NONE
_DECREMENT: Final = SelfTradePrevention.DECREMENT
_EXPIRE_TAKER: Final = SelfTradePrevention.EXPIRE_TAKER
_EXPIRE_MAKER: Final = SelfTradePrevention.EXPIRE_MAKER
_GTC: Final = TimeInForce.GTC
_FOK: Final = TimeInForce.FOK
_TRADE: Final = ExecType.TRADE
_EXPIRED_EXEC: Final = ExecType.EXPIRED
_TRIGGERED: Final = ExecType.TRIGGERED
_PREVENTION: Final = ExecType.TRADE_PREVENTION
_MAKER: Final = LiquiditySide.MAKER
_TAKER: Final = LiquiditySide.TAKER
_new_tuple = tuple.__new__


class PyAccountState:
    """One account: its balances, its open orders by client order id, its STP default.
    ``AccountState`` is this class, or where it is built, its compiled twin
    (``bot4.sim._fastmatch.AccountCore``: the same fields in C)."""

    __slots__ = ("account", "balances", "open", "stp")

    def __init__(self, stp: SelfTradePrevention) -> None:
        self.account = Account()
        self.open: dict[str, SimOrder] = {}
        self.stp = stp
        self.balances: dict[str, tuple[Balance, Balance]] = {}  # symbol -> (base, quote)


def _compiled_account_state() -> type[PyAccountState] | None:
    from bot4._compiled import compiled

    fast = compiled("_fastmatch")
    return None if fast is None else fast.AccountCore


if TYPE_CHECKING:
    AccountState = PyAccountState
else:
    AccountState = _compiled_account_state() or PyAccountState


class MatchingCore:
    """State and the hot path; see ``MatchingEngine`` for the API."""

    symbols: dict[str, SymbolState]
    accounts: dict[str, AccountState]
    open_orders: dict[int, SimOrder]
    fees: FeeSchedule
    fees_collected: dict[str, int]
    trades: list[Trade]
    record_trades: bool
    _seq: int

    def _report(
        self,
        o: SimOrder,
        exec_type: ExecType,
        now: int,
        last_qty: int = 0,
        last_price: int = 0,
        trade_id: int = -1,
        fee: int = 0,
        fee_asset: str = "",
        liquidity: LiquiditySide | None = None,
        last_prevented: int = 0,
    ) -> ExecutionReport:
        self._seq = seq = self._seq + 1
        return _new_tuple(
            ExecutionReport,
            (
                seq, now, exec_type, o.status, o.account, o.symbol, o.order_id,
                o.client_order_id, o.side, o.order_type, o.post_only, o.tif, o.price, o.trigger,
                o.orig_qty, o.executed, o.cum_quote, o.prevented, last_qty, last_price,
                trade_id, fee, fee_asset, liquidity, last_prevented, 0, "",
            ),
        )  # fmt: skip

    def _release(self, o: SimOrder) -> None:
        money = o.locked_money
        if money:
            bal = o.quote_bal if o.is_buy else o.base_bal
            bal.locked -= money
            bal.free += money
            o.locked_money = 0

    def _close(self, o: SimOrder) -> None:
        del self.open_orders[o.order_id]
        del self.accounts[o.account].open[o.client_order_id]

    def _finish(self, o: SimOrder, status: SimStatus, now: int, out: list[ExecutionReport]) -> None:
        """End an open order that did not fill (IOC/market remainder, FOK, no funds)."""
        self._release(o)
        o.status = status
        o.update_time = now
        self._close(o)
        out.append(self._report(o, _EXPIRED_EXEC, now))

    # -- internals: stops ----------------------------------------------------------------
    @staticmethod
    def _park(st: SymbolState, o: SimOrder) -> None:
        up = fires_up(o.order_type, o.is_buy)
        insort(st.stops_up if up else st.stops_down, (o.trigger, o.order_id))

    @staticmethod
    def _unpark(st: SymbolState, o: SimOrder) -> None:
        stops = st.stops_up if fires_up(o.order_type, o.is_buy) else st.stops_down
        del stops[bisect_left(stops, (o.trigger, o.order_id))]

    def _run_stops(self, st: SymbolState, now: int, out: list[ExecutionReport]) -> None:
        """Fire the stops the last price reaches, one at a time, oldest order first, and
        re-read the price after each: a triggered order's own trades move it and may
        fire (or spare) the next one."""
        up, down = st.stops_up, st.stops_down
        while up or down:
            last = st.last_price
            if not last:
                return
            i = bisect_right(up, (last, 1 << 62))
            j = bisect_left(down, (last, -1))
            if not i and j == len(down):
                return
            first = min(oid for _, oid in up[:i] + down[j:])
            o = self.open_orders[first]
            self._unpark(st, o)
            o.working = True
            o.update_time = now
            out.append(self._report(o, _TRIGGERED, now))
            if not o.price and o.is_buy:
                _, cost = walk(st, True, 0, o.orig_qty, o.account, o.stp, 0)
                if insufficient(o.quote_bal, cost):
                    self._finish(o, _EXPIRED, now, out)
                    continue
            self._execute(st, o, now, out)

    # -- internals: matching -------------------------------------------------------------
    def _execute(self, st: SymbolState, o: SimOrder, now: int, out: list[ExecutionReport]) -> None:
        """Match a working order as taker, then rest or expire what is left."""
        price = o.price
        if not price:
            self._take(st, o, 0, now, out)
            if o.status in _OPEN:
                self._finish(o, _EXPIRED, now, out)
            return
        book = st.book
        if o.is_buy:
            keys = book.ask_keys
            crosses = bool(keys) and -keys[-1] <= price
        else:
            keys = book.bid_keys
            crosses = bool(keys) and keys[-1] >= price
        tif = o.tif
        if crosses:
            leaves = o.orig_qty - o.executed - o.prevented
            if tif is _FOK and walk(st, o.is_buy, price, leaves, o.account, o.stp, 0)[0] < leaves:
                self._finish(o, _EXPIRED, now, out)
                return
            self._take(st, o, price, now, out)
            if o.status not in _OPEN:
                return
        if tif is _GTC:
            leaves = o.orig_qty - o.executed - o.prevented
            book.add(o.order_id, o.is_buy, price, leaves, o.display, o.account, o)
        else:
            self._finish(o, _EXPIRED, now, out)

    def _take(
        self, st: SymbolState, o: SimOrder, limit: int, now: int, out: list[ExecutionReport]
    ) -> None:
        """Trade ``o`` against the opposite side down to ``limit`` (0: no limit)."""
        book = st.book
        is_buy = o.is_buy
        if is_buy:
            levels, keys = book.asks, book.ask_keys
        else:
            levels, keys = book.bids, book.bid_keys
        rem = o.orig_qty - o.executed - o.prevented
        account = o.account
        guard = o.stp is not _STP_NONE
        trade = self._trade
        while rem and keys:
            price = -keys[-1] if is_buy else keys[-1]
            if limit and (price > limit if is_buy else price < limit):
                break
            lvl = levels[price]
            queue = lvl[L_QUEUE]
            while rem:
                rec = queue[0]
                mq = rec[QTY]
                if not mq:
                    queue.popleft()
                    continue
                maker: SimOrder = rec[OWNER]
                if guard and maker.account == account:
                    rem = self._prevent(st, o, maker, rec, rem, now, out)
                    if o.status is _IN_MATCH:
                        break
                    if not lvl[L_COUNT]:
                        break
                    continue
                vis = rec[VISIBLE]
                fill = rem if rem < vis else vis
                rem -= fill
                mq -= fill
                vis -= fill
                rec[QTY] = mq
                lvl[L_TOTAL] -= fill
                trade(st, o, maker, price, fill, mq, now, out)
                if vis:
                    rec[VISIBLE] = vis
                    continue
                queue.popleft()
                if mq:  # iceberg: the next slice queues at the back
                    vis = rec[DISPLAY] if rec[DISPLAY] < mq else mq
                    rec[VISIBLE] = vis
                    lvl[L_TOTAL] += vis
                    queue.append(rec)
                    continue
                rec[VISIBLE] = 0
                lvl[L_COUNT] -= 1
                del book.orders[maker.order_id]
                self._close(maker)
                if not lvl[L_COUNT]:
                    break
            if not lvl[L_COUNT]:
                book.drop_level(lvl)
            if o.status is _IN_MATCH:
                return

    def _trade(
        self,
        st: SymbolState,
        taker: SimOrder,
        maker: SimOrder,
        price: int,
        qty: int,
        maker_left: int,
        now: int,
        out: list[ExecutionReport],
    ) -> None:
        """Settle one match: balances, locks, fees, both orders, reports, the trade."""
        notional = price * qty
        base_money = qty * SCALE
        day = now // DAY_NS
        fees = self.fees
        collected = self.fees_collected
        base, quote = st.base, st.quote
        st.trade_seq = tid = st.trade_seq + 1
        st.last_price = price
        for o, is_maker in ((maker, True), (taker, False)):
            rates = fees.rates(o.account, day)
            num, den = (rates[0], rates[1]) if is_maker else (rates[2], rates[3])
            qb = o.quote_bal
            bb = o.base_bal
            unit = o.lock_unit
            if o.is_buy:
                if unit:
                    release = qty * unit
                    qb.locked -= release
                    o.locked_money -= release
                    qb.free += release - notional
                else:
                    qb.free -= notional
                if num >= 0:
                    fee = fees.charge(base_money, num, den)
                    fee_asset = base
                    bb.free += base_money - fee
                else:
                    fee = fees.charge(notional, num, den)
                    fee_asset = quote
                    bb.free += base_money
                    qb.free -= fee
            else:
                if unit:
                    bb.locked -= base_money
                    o.locked_money -= base_money
                else:
                    bb.free -= base_money
                fee = fees.charge(notional, num, den)
                fee_asset = quote
                qb.free += notional - fee
            if fee:
                collected[fee_asset] = collected.get(fee_asset, 0) + fee
            fees.record(o.account, quote, notional, day)
            o.executed += qty
            o.cum_quote += notional
            left = maker_left if is_maker else o.orig_qty - o.executed - o.prevented
            o.status = _PARTIAL if left else _FILLED
            o.update_time = now
            liquidity = _MAKER if is_maker else _TAKER
            out.append(self._report(o, _TRADE, now, qty, price, tid, fee, fee_asset, liquidity))
        if taker.status not in _OPEN:
            self._release(taker)
            self._close(taker)
        if self.record_trades:
            self.trades.append(
                Trade(
                    tid, st.symbol, price, qty, notional, now, taker.side, maker.order_id,
                    taker.order_id, maker.account, taker.account,
                )
            )  # fmt: skip

    def _prevent(
        self,
        st: SymbolState,
        taker: SimOrder,
        maker: SimOrder,
        rec: Record,
        rem: int,
        now: int,
        out: list[ExecutionReport],
    ) -> int:
        """A self-trade that STP stops: expire and/or decrement; returns the taker's
        new remaining quantity."""
        mode = taker.stp
        maker_rem = rec[QTY]
        if mode is _DECREMENT:
            cut = rem if rem < maker_rem else maker_rem
            maker_cut = taker_cut = cut
        else:
            maker_cut = maker_rem if mode is not _EXPIRE_TAKER else 0
            taker_cut = rem if mode is not _EXPIRE_MAKER else 0
        if maker_cut:
            self._cut(maker, maker_cut)
            if maker_cut == maker_rem:
                st.book.detach(rec)
                maker.status = _IN_MATCH
                self._release(maker)
                self._close(maker)
            else:
                left = maker_rem - maker_cut
                rec[QTY] = left
                if rec[VISIBLE] > left:
                    rec[LEVEL][L_TOTAL] -= rec[VISIBLE] - left
                    rec[VISIBLE] = left
            maker.update_time = now
            out.append(self._report(maker, _PREVENTION, now, last_prevented=maker_cut))
        if taker_cut:
            self._cut(taker, taker_cut)
            rem -= taker_cut
            if not rem:
                taker.status = _IN_MATCH
                self._release(taker)
                self._close(taker)
            taker.update_time = now
            out.append(self._report(taker, _PREVENTION, now, last_prevented=taker_cut))
        return rem

    @staticmethod
    def _cut(o: SimOrder, qty: int) -> None:
        """Prevented quantity: it leaves the order and releases its lock."""
        o.prevented += qty
        unit = o.lock_unit
        if unit:
            bal = o.quote_bal if o.is_buy else o.base_bal
            bal.locked -= qty * unit
            bal.free += qty * unit
            o.locked_money -= qty * unit
