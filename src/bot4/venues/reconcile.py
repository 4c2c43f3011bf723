"""Reconciliation: make the journal agree with what the venue says happened.

Runs at start-up and after every reconnect, while the risk engine holds new risk
(``risk.hold("reconciling")``), and lighter (orders and trades only) as the periodic
audit / REST-polling fallback.  The venue is the truth for what happened there; bot4's
journal is the truth for what bot4 intended.  So:

* every order bot4 thinks is working is looked up (open orders, else by client order
  id): fills bot4 missed are fetched and applied with the venue's trade ids, and an
  order the venue has closed is closed (cancelled, expired, filled);
* an order that never reached the venue (journaled, then the process died, or the
  request was lost) is searched until its receive window has passed, then rejected
  after a restart (a decision that old should not trade now) or resent within a
  running session (``CcxtVenue.resolve``);
* recent trades of the account are swept (``fetch_my_trades`` since a cursor): a trade
  of an order bot4 knows under a venue id it had not learnt is looked up and applied;
* balances are compared only on a quiet snapshot (no new fill between reading the
  balance and sweeping the trades after it), and a difference is adopted as a
  journaled ``BalanceAdjusted`` with an alert -- positions come from fills only, so a
  difference there means a deposit, a withdrawal or a bug, never a silent fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal

import ccxt

from bot4.core.enums import OrderStatus
from bot4.core.numbers import money_from_raw, money_to_raw
from bot4.risk.breaker import CircuitOpen
from bot4.venues.ccxt_parse import VenueOrder, parse_balances
from bot4.venues.ccxt_venue import CcxtVenue
from bot4.venues.ccxt_wire import MS
from bot4.venues.rate_limit import RateLimited

PAGE = 1000
VenueErrors = (ccxt.BaseError, OSError, CircuitOpen, RateLimited)


@dataclass(slots=True)
class ReconcileReport:
    startup: bool
    orders_checked: int = 0
    fills_applied: int = 0
    lost_orders: list[str] = field(default_factory=list)
    resolving: list[str] = field(default_factory=list)
    balance_adjustments: dict[str, Decimal] = field(default_factory=dict)
    balances_settled: bool = True
    seconds: float = 0.0


class Reconciler:
    def __init__(
        self,
        venue: CcxtVenue,
        adopt_balances: bool = True,
        resend_after_restart: bool = False,
        lookback_ms: int = 60_000,
    ) -> None:
        self.venue = venue
        self.om = venue.om
        self.adopt_balances = adopt_balances
        self.resend_after_restart = resend_after_restart
        self.lookback_ms = lookback_ms
        self.cursors: dict[str, int] = {}
        self.foreign: set[str] = set()  # venue order ids that are not bot4's
        insts = self.om.state.instruments
        self.assets = sorted({a for i in insts.values() for a in (i.base, i.quote)})

    async def run(self, startup: bool, fresh: bool = False) -> ReconcileReport:
        """The full pass; ``fresh``: a new journal, whose balances start as the venue's."""
        t0 = time.perf_counter()
        report = ReconcileReport(startup)
        fills0 = self.venue.stats["fills"]
        for symbol in self.venue.ccxt_of:
            await self.orders(symbol, startup, report)
        for symbol in self.venue.ccxt_of:
            await self.trades(symbol)
        await self.balances(report, fresh)
        report.fills_applied = self.venue.stats["fills"] - fills0
        report.seconds = time.perf_counter() - t0
        return report

    async def sync(self) -> None:
        """The light pass (periodic audit, REST polling): orders and trades."""
        report = ReconcileReport(False)
        for symbol in self.venue.ccxt_of:
            await self.orders(symbol, False, report)
            await self.trades(symbol)

    # -- orders -----------------------------------------------------------------------------
    async def orders(self, symbol: str, startup: bool, report: ReconcileReport) -> None:
        venue = self.venue
        sym = venue.ccxt_of[symbol]
        at_venue: dict[str, VenueOrder] = {}
        for o in await venue.call("open_orders", venue.ex.fetch_open_orders, sym):
            vo = venue.parse_order(o)
            at_venue[vo.client_order_id] = vo
            if vo.client_order_id not in self.om.state.orders and vo.client_order_id.startswith(
                self.om.id_prefix + "-"
            ):
                venue.alert(f"the venue has an open order {vo.client_order_id} bot4 never made")
        mine = [o for o in self.om.state.open_orders.values() if o.symbol == symbol]
        for order in mine:
            cid = order.client_order_id
            if cid in venue.inflight or cid in venue.resolvers or cid in venue.deferred:
                continue  # its own task settles it
            if order.status is OrderStatus.INITIALIZED:
                continue
            report.orders_checked += 1
            found = at_venue.get(cid)
            if found is None:
                found = await venue.query(cid, symbol)
            if found is not None:
                await venue.apply_order(found, symbol)
                continue
            if order.venue_order_id:
                venue.alert(f"{cid} ({order.venue_order_id}) is unknown to the venue: expired")
                venue._om(self.om.on_expired, cid)
                continue
            if not startup and cid not in venue.sent:
                continue  # still waiting in the outbox
            # Never acknowledged, and not at the venue (yet): search until the request's
            # receive window has passed, then reject (after a restart) or resend.
            resend = venue.resend_unknown and (not startup or self.resend_after_restart)
            venue.unknown.setdefault(cid, order.ts_last)
            report.resolving.append(cid)
            if startup:
                report.lost_orders.append(cid)
            task = venue.spawn(venue.resolve(cid, resend=resend))
            venue.resolvers[cid] = task

    # -- trades -----------------------------------------------------------------------------
    def _initial_since(self, symbol: str) -> int:
        orders = [o for o in self.om.state.orders.values() if o.symbol == symbol]
        now_ms = self.venue.clock.now_ns() // MS
        if not orders:
            return now_ms - self.lookback_ms
        open_ts = [o.ts_init for o in orders if o.status.is_open]
        newest = max(o.ts_last for o in orders)
        start = min([*open_ts, newest]) // MS
        return max(start - self.lookback_ms, now_ms - 7 * 86_400_000)

    async def trades(self, symbol: str) -> None:
        """Sweep the account's trades since the cursor; apply those of bot4's orders."""
        venue = self.venue
        sym = venue.ccxt_of[symbol]
        since = self.cursors.get(symbol)
        if since is None:
            since = self._initial_since(symbol)
        newest = since
        unknown: set[str] = set()
        for _ in range(10):
            page = await venue.call("my_trades", venue.ex.fetch_my_trades, sym, since, PAGE)
            for t in page:
                f = venue.parse_fill(t)
                newest = max(newest, f.ts_ms)
                cid = venue.resolve_cid(f.client_order_id, f.venue_order_id)
                if cid is None:
                    if f.venue_order_id not in self.foreign:
                        unknown.add(f.venue_order_id)
                    continue
                venue.apply_fill(f, cid)
            if len(page) < PAGE or newest == since:
                break
            since = newest
        for vid in sorted(unknown):
            try:
                vo = venue.parse_order(await venue.call("order", venue.ex.fetch_order, vid, sym))
            except ccxt.OrderNotFound:
                self.foreign.add(vid)
                continue
            if vo.client_order_id in self.om.state.orders:
                venue.venue_ids[vid] = vo.client_order_id
                await venue.apply_order(vo, symbol)
            else:
                self.foreign.add(vid)
        # A small overlap: trades stamped in the same millisecond may arrive late; the
        # order manager drops repeats by trade id.
        self.cursors[symbol] = max(newest - 2_000, self.cursors.get(symbol, 0))

    # -- balances ---------------------------------------------------------------------------
    async def balances(self, report: ReconcileReport, fresh: bool) -> None:
        venue = self.venue
        for _ in range(3):
            fills0 = venue.stats["fills"]
            raw = parse_balances(await venue.call("balance", venue.ex.fetch_balance))
            for symbol in venue.ccxt_of:
                await self.trades(symbol)
            if venue.stats["fills"] == fills0:
                break
        else:
            report.balances_settled = False
            venue.alert("balances not compared: fills kept arriving")
            return
        account = self.om.state.account
        for asset in self.assets:
            free, locked = raw.get(asset, (Decimal(0), Decimal(0)))
            theirs = money_to_raw(free + locked, "balance")
            bal = account.balances.get(asset)
            ours = bal.total if bal is not None else 0
            diff = theirs - ours
            if not diff:
                continue
            report.balance_adjustments[asset] = money_from_raw(diff)
            if not fresh:
                venue.alert(
                    f"balance {asset}: venue {money_from_raw(theirs)}, journal "
                    f"{money_from_raw(ours)}" + (" (adopted)" if self.adopt_balances else "")
                )
            if fresh or self.adopt_balances:
                reason = "venue balance at start" if fresh else "reconcile: venue balance"
                venue._om(self.om.deposit, asset, money_from_raw(diff), reason)
