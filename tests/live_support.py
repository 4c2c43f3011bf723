"""Shared helpers for the paper/live tests (this module holds no tests): a strategy that
trades on a timer, the exchange server as a child process, and the venue's own account
state read back through a plain ccxt client for the comparisons."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot4.core.enums import OrderSide
from bot4.risk.profile import RiskProfile
from bot4.server.process import ServerProcess, ccxt_options, point_ccxt
from bot4.strategy.base import Strategy

KEY, SECRET = "live-test-key", "live-test-secret-Z9q8w7e6r5t4"
SYMBOL = "BTCUSDT"
REPO = Path(__file__).resolve().parents[1]


class Churn(Strategy):
    """Every ``period_ms``: rest a limit buy just under the market, buy at market, cancel
    the older resting orders, sell at market what was bought -- in turn.  No stop-loss
    (the tests run it with ``require_stop_loss`` off)."""

    period_ms: int = 150
    qty: Decimal = Decimal("0.001")
    steps: int = 0  # stop acting after this many steps (0: never)

    def on_start(self) -> None:
        self.n = 0
        self.last: Decimal | None = None
        self.set_timer("churn", self.period_ms * 1_000_000)

    def on_trade(self, trade: Any) -> None:
        self.last = trade.price

    def on_timer(self, name: str) -> None:
        if self.last is None or (self.steps and self.n >= self.steps):
            return
        step = self.n % 4
        self.n += 1
        if step == 0:
            self.buy(self.qty, limit=self.last * Decimal("0.999"))
        elif step == 1:
            self.buy(self.qty)
        elif step == 2:
            for order in self.open_orders():
                if order.side is OrderSide.BUY and order.price_raw and not order.reduce_only:
                    self.cancel(order)
        elif self.position() >= self.qty:
            self.sell(self.qty)

    def on_position(self, change: Any) -> None:
        self.position_changes = [*getattr(self, "position_changes", []), change]

    def on_book(self, book: Any) -> None:
        self.books = getattr(self, "books", 0) + 1
        bids, asks = book["bids"], book["asks"]
        if bids and asks and bids[0][0] >= asks[0][0]:
            self.crossed = getattr(self, "crossed", 0) + 1


class ChurnEach(Strategy):
    """Every ``period_ms``, for every symbol of the session in turn: buy about
    ``notional`` at market, then sell it back -- one account, several symbols."""

    period_ms: int = 150
    notional: Decimal = Decimal(20)

    def on_start(self) -> None:
        self.n = 0
        self.last: dict[str, Decimal] = {}
        self.bought: dict[str, Decimal] = {}
        self.set_timer("churn", self.period_ms * 1_000_000)

    def on_trade(self, trade: Any) -> None:
        self.last[trade.symbol] = trade.price

    def on_timer(self, name: str) -> None:
        symbols = sorted(self.ctx.instruments)
        symbol = symbols[self.n % len(symbols)]
        self.n += 1
        price = self.last.get(symbol)
        if price is None:
            return
        held = self.bought.pop(symbol, None)
        if held is not None:
            self.sell(held, symbol=symbol)
        else:
            qty = self.ctx.instrument(symbol).make_qty(self.notional / price)
            self.bought[symbol] = qty
            self.buy(qty, symbol=symbol)


def no_stop_profile() -> RiskProfile:
    return RiskProfile.default().with_limits(require_stop_loss=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_args(state: Path | None = None, *extra: str) -> list[str]:
    args = [
        "--api-key",
        KEY,
        "--api-secret",
        SECRET,
        "--symbols",
        SYMBOL,
        "--balances",
        "USDT=1000000,BTC=10",
        "--seed",
        "7",
        "--mm-interval-ms",
        "50",
        "--mm-trade-probability",
        "0.5",
        "--weight-limit",
        "1000000",
        "--orders-per-10s",
        "100000",
    ]
    if state is not None:
        args += ["--state", str(state), "--autosave", "0"]
    return [*args, *extra]


def start_server(state: Path | None = None, port: int | None = None) -> ServerProcess:
    """A started server (stop it yourself); ``running_server`` for a ``with`` block."""
    extra = ("--port", str(port)) if port else ()  # the last --port wins over the 0
    return ServerProcess(server_args(state, *extra)).start()


@contextmanager
def running_server(state: Path | None = None, port: int | None = None) -> Iterator[ServerProcess]:
    srv = start_server(state, port)
    try:
        yield srv
    finally:
        srv.stop()
        srv.close()


async def venue_account(port: int) -> dict[str, Any]:
    """The venue's own record of the account: balances, trades, all orders (exact)."""
    import ccxt.async_support as ccxt_async

    ex = point_ccxt(ccxt_async.binance(ccxt_options(KEY, SECRET)), port)
    try:
        await ex.load_markets()
        bal = await ex.fetch_balance()
        trades = await ex.fetch_my_trades("BTC/USDT", None, 1000)
        orders = await ex.fetch_orders("BTC/USDT", None, 1000)
        opened = await ex.fetch_open_orders("BTC/USDT")
    finally:
        await ex.close()
    return {
        "balances": {
            b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in bal["info"]["balances"]
        },
        "trades": {
            str(t["info"]["id"]): (
                str(t["info"]["orderId"]),
                Decimal(t["info"]["qty"]),
                Decimal(t["info"]["price"]),
                Decimal(t["info"]["commission"]),
                t["info"]["commissionAsset"],
            )
            for t in trades
        },
        "orders": {str(o["info"]["orderId"]): o["info"]["clientOrderId"] for o in orders},
        "open": sorted(o["info"]["clientOrderId"] for o in opened),
    }


def run_paper(args: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> Any:
    """``python -m bot4.live paper ...`` as a child (the commands are not registered in
    ``bot4`` here)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "bot4.live", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(pred: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


async def async_wait_until(pred: Any, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())


def check_journal_matches_venue(
    om: Any, account: dict[str, Any], initial: dict[str, Decimal]
) -> dict[str, int]:
    """The invariants every paper/live test ends with: the journal's orders, fills,
    positions and balances equal the venue's own account, exactly; no client order id
    twice at the venue; nothing open on either side.  Returns a few counts."""
    from bot4.core.numbers import from_raw, money_from_raw

    state = om.state
    # orders: every venue order is one of ours, once; every order the journal saw
    # acknowledged is at the venue under the same venue id
    venue_cids = list(account["orders"].values())
    assert len(venue_cids) == len(set(venue_cids)), "a client order id twice at the venue"
    acked = {o.client_order_id: o.venue_order_id for o in state.orders.values() if o.venue_order_id}
    by_cid = {cid: oid for oid, cid in account["orders"].items()}
    assert set(by_cid) == set(acked), set(by_cid) ^ set(acked)
    for cid, oid in acked.items():
        assert by_cid[cid] == oid, cid
    # fills: the same trades, exactly
    ours = {}
    for order in state.orders.values():
        for tid in order.trade_ids:
            ours[tid] = order
    assert set(ours) == set(account["trades"]), set(ours) ^ set(account["trades"])
    journal_fills: dict[str, tuple[str, Decimal, Decimal, Decimal, str]] = {}
    from bot4.core.events import OrderFilled
    from bot4.oms.journal import SqlJournal

    for tid, venue_trade in account["trades"].items():
        assert ours[tid].venue_order_id == venue_trade[0]
    with SqlJournal(om.journal.url) as journal:
        for ev in journal.read():
            if isinstance(ev, OrderFilled):
                assert ev.trade_id not in journal_fills, "a fill journaled twice"
                journal_fills[ev.trade_id] = (
                    state.orders[ev.client_order_id].venue_order_id,
                    from_raw(ev.qty_raw),
                    from_raw(ev.price_raw),
                    money_from_raw(ev.fee_money),
                    ev.fee_asset,
                )
    assert journal_fills == account["trades"]
    # balances and positions
    for asset in ("BTC", "USDT"):
        assert state.account.total(asset) == account["balances"][asset], asset
    pos = state.positions.get(SYMBOL)
    qty = from_raw(pos.qty_raw) if pos is not None else Decimal(0)
    assert qty == account["balances"]["BTC"] - initial["BTC"]
    assert account["open"] == [] and not state.open_orders
    return {"orders": len(venue_cids), "fills": len(journal_fills)}


class BracketOnce(Strategy):
    """Buy once with a protective stop (a bracket: the stop is released at the venue
    with the entry's fill), then close the position: the stop is cancelled first and
    the market sell follows its confirmation."""

    hold_ms: int = 800

    def on_start(self) -> None:
        self.phase = 0
        self.set_timer("step", self.hold_ms * 1_000_000)

    def on_trade(self, trade: Any) -> None:
        if self.phase == 0:
            self.phase = 1
            self.buy(Decimal("0.002"), stop_loss_pct=Decimal(2))

    def on_timer(self, name: str) -> None:
        if self.phase == 1 and not self.is_flat():
            self.phase = 2
            self.close_position()


def run_then_stop_servers(
    go: Callable[[], Awaitable[None]], srv: Any, result: dict[str, Any], timeout_s: float = 60
) -> None:
    """Run a chaos scenario, then stop whatever servers it left: the killed-and-restarted
    exchange subprocess ``srv`` and a test-only server the scenario put in
    ``result["server"]``, even when the scenario failed."""
    try:
        asyncio.run(asyncio.wait_for(go(), timeout_s))
    finally:
        srv.kill()
        srv.close()
        if "server" in result:
            result["server"].stop()
            result["server"].close()


def recovery_after(runner: Any, back_ns: int) -> tuple[Any, float, float]:
    """After the venue came back at ``back_ns``: (the session's recovery record, seconds
    until new orders were allowed, seconds until the first order was submitted)."""
    from bot4.core.events import OrderSubmitted
    from bot4.oms.journal import SqlJournal

    rec = runner.session.recoveries[1]
    with SqlJournal(runner.cfg.journal_url) as journal:
        first_order = min(
            e.ts_event
            for e in journal.read()
            if isinstance(e, OrderSubmitted) and e.ts_event > back_ns
        )
    return rec, (rec.ready_ns - back_ns) / 1e9, (first_order - back_ns) / 1e9
