"""The status line: venue session, risk state, positions with P&L, orders, fills.

On a terminal it is one line that rich redraws in place; otherwise (a log file, a
pipe) one plain line every interval.  It reads state only: nothing here can change an
order, and nothing here prints a credential (the venue's config ``repr`` hides them).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from bot4.core.numbers import from_raw, money_from_raw

if TYPE_CHECKING:
    from bot4.live.runner import LiveRunner


def snapshot(runner: LiveRunner) -> dict[str, Any]:
    """The figures of the status line, as data."""
    risk, state = runner.risk, runner.om.state
    prices = risk.market.last_prices
    positions = {}
    realized = Decimal(0)
    unrealized = Decimal(0)
    for symbol, pos in sorted(state.positions.items()):
        mark = prices.get(symbol)
        u = money_from_raw(pos.unrealized_money(mark)) if mark is not None else Decimal(0)
        realized += money_from_raw(pos.realized_money)
        unrealized += u
        positions[symbol] = {
            "qty": str(from_raw(pos.qty_raw)),
            "mark": str(from_raw(mark)) if mark is not None else None,
            "unrealized": str(u),
            "realized": str(money_from_raw(pos.realized_money)),
        }
    equity = risk.equity_money()
    ks = risk.kill_switch
    trip = None
    if state.trading_state != "ACTIVE" and ks.trips:
        _, condition, detail = ks.trips[-1]
        trip = f"{condition}: {detail}" if detail else condition
    num, den = risk.scale
    return {
        "session": runner.session.state.value,
        "trading_state": state.trading_state,
        "holds": sorted(risk._holds),
        "kill_switch": trip,
        "journal_failed": runner.journal_failed,  # why trading stopped, while it is stopped
        "size_scale": f"{num}/{den}" if num != den else None,  # a staged reset under way
        "positions": positions,
        "realized_pnl": str(realized),
        "unrealized_pnl": str(unrealized),
        "equity": str(money_from_raw(equity)) if equity is not None else None,
        "open_orders": len(state.open_orders),
        "fills": runner.venue.stats["fills"],
        "denied": risk.denied,
        "alerts": len(runner.venue.alerts),
    }


def render(s: dict[str, Any]) -> str:
    pos = " ".join(
        f"{sym} {p['qty']}@{p['mark']} u{_short(p['unrealized'])}"
        for sym, p in s["positions"].items()
    )
    holds = ",".join(s["holds"]) or "-"
    risk = s["trading_state"]
    if s.get("kill_switch"):
        risk += f" ({s['kill_switch']}; bot4 risk reset)"
    if s.get("journal_failed"):
        risk = "STOPPED (JOURNAL FAILED: nothing is sent; restart when it is writable)"
    if s.get("size_scale"):
        risk += f" size x{s['size_scale']}"
    return (
        f"venue {s['session']} | risk {risk} hold {holds} | {pos or 'flat'} | "
        f"P&L r{_short(s['realized_pnl'])} u{_short(s['unrealized_pnl'])} | "
        f"equity {_short(s['equity'])} | open {s['open_orders']} fills {s['fills']} "
        f"denied {s['denied']} alerts {s['alerts']}"
    )


def _short(value: str | None) -> str:
    if value is None:
        return "?"
    return f"{Decimal(value):.2f}"


class StatusLine:
    def __init__(self, runner: LiveRunner, console: Console | None = None) -> None:
        self.runner = runner
        self.console = console or Console(stderr=True)
        self.live: Live | None = None
        if self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, auto_refresh=False, transient=False)
            self.live.start()

    def show(self) -> None:
        line = render(snapshot(self.runner))
        if self.live is not None:
            self.live.update(Text(line), refresh=True)
        else:
            self.console.print(line, highlight=False, soft_wrap=True)

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.show()

    def close(self) -> None:
        """The last line, always: a session shorter than one interval still shows how
        it ended."""
        self.show()
        if self.live is not None:
            self.live.stop()
            self.live = None
