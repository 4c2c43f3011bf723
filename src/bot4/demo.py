"""A guided tour of the trading core, run by ``bot4 demo``.

It plays one trading session through the order manager with scripted venue reports
(the exchange simulator arrives in its own package), journals every event to SQLite,
and proves the journal by replaying it into a fresh state.  Each step shows a piece
of the core: exact money, exchange filters, a bracket order whose exits follow the
entry's partial fills, the OCO cap, deduplicated fills, typed rejections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderType
from bot4.core.errors import Bot4Error
from bot4.core.instrument import Instrument
from bot4.core.numbers import from_raw, money_from_raw
from bot4.oms.journal import SqlJournal, replay
from bot4.oms.manager import OrderManager
from bot4.oms.requests import OrderRequest
from bot4.oms.state import TradingState

SECOND = 10**9
START_NS = 1_747_699_200 * SECOND  # 2025-05-20 00:00 UTC

BTCUSDT = Instrument.create(
    "BTCUSDT",
    "BTC",
    "USDT",
    tick_size="0.01",
    step_size="0.00001",
    min_qty="0.00001",
    max_qty="9000",
    min_notional="5",
    max_notional="9000000",
)


@dataclass
class DemoResult:
    state: TradingState
    replayed: TradingState
    journal_path: Path
    events: int
    rejections: list[tuple[str, str]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    @property
    def replay_matches(self) -> bool:
        return self.state.snapshot() == self.replayed.snapshot()


def run_demo(journal_path: Path) -> DemoResult:
    """Play the scripted session, journaling to ``journal_path`` (a new SQLite file)."""
    if journal_path.exists():
        raise FileExistsError(f"{journal_path} exists; the demo writes a new journal")
    clock = TestClock(START_NS)
    journal = SqlJournal(f"sqlite:///{journal_path}")
    om = OrderManager([BTCUSDT], clock=clock, journal=journal)
    steps: list[str] = []
    rejections: list[tuple[str, str]] = []

    def tick(seconds: int = 1) -> None:
        clock.advance(seconds * SECOND)

    om.deposit("USDT", "150000")
    steps.append("deposit 150,000 USDT")

    bad = [
        (
            "off-tick price",
            OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "1", "100000.005"),
        ),
        (
            "quantity off step",
            OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.000015", "100000"),
        ),
        ("binary float", OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 0.1, "100000")),  # type: ignore[arg-type]
        ("unknown symbol", OrderRequest("DOGEUSDT", OrderSide.BUY, OrderType.MARKET, "1")),
        (
            "too expensive",
            OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "2", "100000"),
        ),  # 200k > 150k
    ]
    before = om.state.snapshot()
    for label, req in bad:
        try:
            om.submit(req)
        except Bot4Error as err:
            rejections.append((label, f"{type(err).__name__}: {err}"))
    assert om.state.snapshot() == before, "a rejection changed state"
    try:
        om.submit(
            OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "1", "-5"),
            ts=START_NS - 60 * SECOND,
        )
    except Bot4Error as err:
        rejections.append(("stale timestamp", f"{type(err).__name__}: {err}"))

    tick()
    entry, stop, take = om.submit_bracket(
        OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "1", price="105000.00"),
        stop_loss="103000.00",
        take_profit="108000.00",
    )
    steps.append(
        f"bracket: buy 1 BTC @ 105,000, stop 103,000, take-profit 108,000 ({entry.client_order_id})"
    )
    tick()
    om.on_accepted(entry.client_order_id, "9001")
    steps.append("venue accepted the entry: 105,000 USDT locked")
    tick()
    om.on_fill(entry.client_order_id, "T-1", "0.4", "104999.50", fee="0.0004", fee_asset="BTC")
    steps.append("entry partly filled 0.4 @ 104,999.50 (fee 0.0004 BTC): exits released for 0.3996")
    tick()
    om.on_accepted(stop.client_order_id, "9002")
    om.on_accepted(take.client_order_id, "9003")
    om.on_fill(entry.client_order_id, "T-1", "0.4", "104999.50", fee="0.0004", fee_asset="BTC")
    steps.append("the same trade reported twice: applied once (deduplicated by trade id)")
    tick()
    om.on_fill(entry.client_order_id, "T-2", "0.6", "105000.00", fee="0.0006", fee_asset="BTC")
    steps.append("entry filled: exits grown to 0.999 BTC (1 BTC less 0.001 BTC fees)")
    tick(60)
    om.on_fill(take.client_order_id, "T-3", "0.5", "108000.00", fee="54", fee_asset="USDT")
    steps.append("take-profit filled 0.5 @ 108,000: stop-loss reduced to the 0.499 left")
    tick(60)
    om.on_fill(take.client_order_id, "T-4", "0.499", "108000.00", fee="53.892", fee_asset="USDT")
    steps.append("take-profit filled: stop-loss cancelled in the same step (OCO)")
    om.on_canceled(stop.client_order_id)  # the venue's own confirmation: a no-op now
    journal.close()

    replayed = replay(SqlJournal(f"sqlite:///{journal_path}").read(), [BTCUSDT])
    return DemoResult(om.state, replayed, journal_path, om.state.last_seq, rejections, steps)


def describe_money(raw: int) -> str:
    value = money_from_raw(raw)
    return f"{value:,.8f}".rstrip("0").rstrip(".") if value else "0"


def describe_qty(raw: int) -> str:
    return str(from_raw(raw))


def equity_usdt(state: TradingState, mark: Decimal) -> Decimal:
    from bot4.core.numbers import to_raw

    return money_from_raw(state.equity_money("USDT", {"BTCUSDT": to_raw(mark, "mark")}))
