"""The matching engine: exact fills for each order type, STP, stops, fees, Binance
rejections that change nothing, and random sessions checked against invariants and a
brute-force reference matcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.core.clock import TestClock
from bot4.core.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from bot4.core.errors import InstrumentRuleViolation
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE, money_to_raw, to_raw
from bot4.sim.errors import BinanceError, FilterFailure
from bot4.sim.fees import DAY_NS, FeeSchedule, FeeTier
from bot4.sim.matching import MatchingEngine
from bot4.sim.matching_checks import audit
from bot4.sim.matching_types import (
    ExecType,
    ExecutionReport,
    NewOrder,
    SelfTradePrevention,
    SimStatus,
    binance_order_type,
    from_binance_order_type,
    to_bot4_status,
)
from tests.conftest import T0, btcusdt, ethusdt

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
IOC, FOK, GTC = TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTC
STP = SelfTradePrevention


def P(value: str) -> int:
    return to_raw(value, "price")


Q = P


def money(value: str) -> int:
    return money_to_raw(value, "money")


def tiny_btcusdt() -> Instrument:
    """BTCUSDT without a minimum notional, for fee arithmetic on dust trades."""
    return Instrument.create("BTCUSDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001")


def new_engine(
    fees: FeeSchedule | None = None, accounts: str = "ABCD", instrument: Instrument | None = None
) -> MatchingEngine:
    instruments = [instrument or btcusdt(), ethusdt()]
    engine = MatchingEngine(instruments, fees or FeeSchedule.flat(0, 0), TestClock(T0))
    for acc in accounts:
        engine.deposit(acc, "USDT", money("1000000"))
        engine.deposit(acc, "BTC", money("10"))
    return engine


def limit(acc: str, side: OrderSide, qty: str, price: str, **kw: Any) -> NewOrder:
    return NewOrder(acc, "BTCUSDT", side, LIMIT, Q(qty), P(price), **kw)


def market(acc: str, side: OrderSide, qty: str = "0", **kw: Any) -> NewOrder:
    return NewOrder(acc, "BTCUSDT", side, MARKET, Q(qty), **kw)


def stop(acc: str, side: OrderSide, kind: OrderType, qty: str, trigger: str, price: str = "0"):
    return NewOrder(acc, "BTCUSDT", side, kind, Q(qty), P(price), P(trigger))


def fills(reports: list[ExecutionReport]) -> list[tuple[int, int, int, LiquiditySide | None]]:
    return [
        (r.order_id, r.last_qty_raw, r.last_price_raw, r.liquidity)
        for r in reports
        if r.exec_type is ExecType.TRADE
    ]


def kinds(reports: list[ExecutionReport]) -> list[tuple[int, str, str]]:
    return [(r.order_id, r.exec_type.value, r.status.value) for r in reports]


def free(engine: MatchingEngine, acc: str, asset: str) -> int:
    return engine.account(acc).balance(asset).free


def locked(engine: MatchingEngine, acc: str, asset: str) -> int:
    return engine.account(acc).balance(asset).locked


def asks(engine: MatchingEngine) -> list[tuple[int, int]]:
    return engine.book("BTCUSDT").depth()[1]


def bids(engine: MatchingEngine) -> list[tuple[int, int]]:
    return engine.book("BTCUSDT").depth()[0]


def rejects(engine: MatchingEngine, call: Callable[[], object], code: int, msg: str) -> None:
    """The call is refused with exactly this code and message, and nothing changes."""
    before = engine.snapshot()
    with pytest.raises(BinanceError) as info:
        call()
    assert (info.value.code, info.value.msg) == (code, msg)
    assert info.value.to_dict() == {"code": code, "msg": msg}
    assert engine.snapshot() == before
    audit(engine)


# -- limits, priority ------------------------------------------------------------------
def test_limit_cross_fills_at_the_maker_price_and_returns_the_improvement() -> None:
    e = new_engine()
    (new,) = e.submit(limit("A", SELL, "1", "60000"))
    assert (new.exec_type, new.status, new.order_id, new.client_order_id) == (
        ExecType.NEW,
        SimStatus.NEW,
        1,
        "sim-1",
    )
    assert locked(e, "A", "BTC") == money("1")
    out = e.submit(limit("B", BUY, "0.4", "60010", client_order_id="b1"))
    assert kinds(out) == [
        (2, "NEW", "NEW"),
        (1, "TRADE", "PARTIALLY_FILLED"),
        (2, "TRADE", "FILLED"),
    ]
    assert fills(out) == [
        (1, Q("0.4"), P("60000"), LiquiditySide.MAKER),
        (2, Q("0.4"), P("60000"), LiquiditySide.TAKER),
    ]
    assert out[2].client_order_id == "b1" and out[2].cum_quote_money == money("24000")
    assert out[1].trade_id == out[2].trade_id == 1
    assert free(e, "B", "USDT") == money("976000") and locked(e, "B", "USDT") == 0
    assert free(e, "B", "BTC") == money("10.4")
    assert free(e, "A", "USDT") == money("1024000")
    assert (free(e, "A", "BTC"), locked(e, "A", "BTC")) == (money("9"), money("0.6"))
    assert asks(e) == [(P("60000"), Q("0.6"))]
    assert e.last_price("BTCUSDT") == P("60000")
    (trade,) = e.drain_trades()
    assert (trade.maker_order_id, trade.taker_order_id, trade.taker_side) == (1, 2, BUY)
    assert not trade.buyer_is_maker and e.drain_trades() == []
    audit(e)


def test_price_then_time_priority_across_levels() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "1", "60001"))  # 1
    e.submit(limit("B", SELL, "1", "60000"))  # 2
    e.submit(limit("C", SELL, "1", "60000"))  # 3
    e.submit(limit("A", SELL, "2", "60000"))  # 4
    out = e.submit(limit("D", BUY, "4.5", "60001"))
    maker_fills = [(oid, q, p) for oid, q, p, liq in fills(out) if liq is LiquiditySide.MAKER]
    assert maker_fills == [
        (2, Q("1"), P("60000")),
        (3, Q("1"), P("60000")),
        (4, Q("2"), P("60000")),
        (1, Q("0.5"), P("60001")),
    ]
    assert asks(e) == [(P("60001"), Q("0.5"))]
    assert out[-1].status is SimStatus.FILLED and out[-1].executed_qty_raw == Q("4.5")
    audit(e)


def test_resting_buy_and_sell_do_not_cross_and_gtc_rests() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "1", "59999.99"))
    out = e.submit(limit("B", SELL, "1", "60000"))
    assert kinds(out) == [(2, "NEW", "NEW")]
    assert bids(e) == [(P("59999.99"), Q("1"))] and asks(e) == [(P("60000"), Q("1"))]
    assert e.open_orders_of("A")[0].leaves_qty == Q("1")
    audit(e)


# -- FOK / IOC / post-only ---------------------------------------------------------------
def test_fok_fills_completely_or_expires_untouched() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "1", "60000"))
    e.submit(limit("B", SELL, "1", "60001"))
    book_before = e.book("BTCUSDT").snapshot()
    usdt = free(e, "C", "USDT")
    out = e.submit(limit("C", BUY, "2.5", "60001", time_in_force=FOK))
    assert kinds(out) == [(3, "NEW", "NEW"), (3, "EXPIRED", "EXPIRED")]
    out = e.submit(limit("C", BUY, "1.5", "60000", time_in_force=FOK))  # limit respected
    assert kinds(out) == [(4, "NEW", "NEW"), (4, "EXPIRED", "EXPIRED")]
    assert e.book("BTCUSDT").snapshot() == book_before
    assert free(e, "C", "USDT") == usdt and locked(e, "C", "USDT") == 0
    out = e.submit(limit("C", BUY, "2", "60001", time_in_force=FOK))
    assert [(q, p) for _, q, p, liq in fills(out) if liq is LiquiditySide.TAKER] == [
        (Q("1"), P("60000")),
        (Q("1"), P("60001")),
    ]
    assert out[-1].status is SimStatus.FILLED and asks(e) == []
    audit(e)


def test_fok_counts_hidden_iceberg_quantity() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "3", "60000", display_qty_raw=Q("1")))
    out = e.submit(limit("C", BUY, "3", "60000", time_in_force=FOK))
    assert out[-1].status is SimStatus.FILLED and asks(e) == []


@pytest.mark.parametrize(
    ("mode", "fills_all"),
    [
        (STP.NONE, True),  # trades with itself
        (STP.EXPIRE_MAKER, True),  # own order expired, B's 2 fill it
        (STP.EXPIRE_TAKER, False),
        (STP.EXPIRE_BOTH, False),
        (STP.DECREMENT, False),
    ],
)
def test_fok_with_self_trade_prevention(mode: SelfTradePrevention, fills_all: bool) -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "1", "60000"))  # 1, own
    e.submit(limit("B", SELL, "2", "60001"))  # 2
    before = e.book("BTCUSDT").snapshot()
    out = e.submit(limit("A", BUY, "2", "60001", time_in_force=FOK, stp=mode))
    if fills_all:
        assert out[-1].status is SimStatus.FILLED and out[-1].executed_qty_raw == Q("2")
    else:
        assert kinds(out) == [(3, "NEW", "NEW"), (3, "EXPIRED", "EXPIRED")]
        assert e.book("BTCUSDT").snapshot() == before
    audit(e)


def test_ioc_expires_the_remainder() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "1", "60000"))
    out = e.submit(limit("C", BUY, "1.5", "60000", time_in_force=IOC))
    assert kinds(out) == [
        (2, "NEW", "NEW"),
        (1, "TRADE", "FILLED"),
        (2, "TRADE", "PARTIALLY_FILLED"),
        (2, "EXPIRED", "EXPIRED"),
    ]
    assert out[-1].executed_qty_raw == Q("1") and out[-1].leaves_qty_raw == 0
    assert locked(e, "C", "USDT") == 0 and free(e, "C", "USDT") == money("940000")
    assert asks(e) == [] and bids(e) == []
    out = e.submit(limit("C", BUY, "1", "59000", time_in_force=IOC))
    assert kinds(out) == [(3, "NEW", "NEW"), (3, "EXPIRED", "EXPIRED")]
    audit(e)


def test_post_only_is_refused_if_it_would_take() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "1", "60000"))
    rejects(
        e,
        lambda: e.submit(limit("B", BUY, "1", "60000", post_only=True)),
        -2010,
        "Order would immediately match and take.",
    )
    out = e.submit(limit("B", BUY, "1", "59999.99", post_only=True))
    assert kinds(out) == [(2, "NEW", "NEW")] and out[0].binance_order_type == "LIMIT_MAKER"
    rejects(
        e,
        lambda: e.submit(limit("B", SELL, "1", "59999.99", post_only=True)),
        -2010,
        "Order would immediately match and take.",
    )
    rejects(
        e,
        lambda: e.submit(limit("B", BUY, "1", "59000", post_only=True, time_in_force=IOC)),
        -1014,
        "Unsupported order combination.",
    )


# -- icebergs ----------------------------------------------------------------------------
def test_iceberg_shows_its_slice_and_each_refill_loses_priority() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "3", "60000", display_qty_raw=Q("1")))  # 1
    e.submit(limit("B", SELL, "1", "60000"))  # 2
    assert asks(e) == [(P("60000"), Q("2"))]
    out = e.submit(limit("C", BUY, "2.5", "60000"))  # 3
    makers = [(oid, q) for oid, q, _, liq in fills(out) if liq is LiquiditySide.MAKER]
    assert makers == [(1, Q("1")), (2, Q("1")), (1, Q("0.5"))]
    assert asks(e) == [(P("60000"), Q("0.5"))]  # what is left of the second slice
    assert e.order("A", "BTCUSDT", 1).leaves_qty == Q("1.5")
    e.submit(limit("D", SELL, "1", "60000"))  # 4, queues behind the slice
    out = e.submit(limit("C", BUY, "1", "60000"))  # 5
    makers = [(oid, q) for oid, q, _, liq in fills(out) if liq is LiquiditySide.MAKER]
    assert makers == [(1, Q("0.5")), (4, Q("0.5"))]  # the refill went behind order 4
    assert asks(e) == [(P("60000"), Q("1.5"))]
    audit(e)


def test_iceberg_parameter_rules() -> None:
    e = new_engine()
    rejects(
        e,
        lambda: e.submit(limit("A", SELL, "1", "60000", display_qty_raw=Q("1"))),
        -2010,
        "IcebergQty exceeds QTY.",
    )
    rejects(
        e,
        lambda: e.submit(limit("A", SELL, "11", "60000", display_qty_raw=Q("1"))),
        -1013,
        "Filter failure: ICEBERG_PARTS",
    )
    rejects(
        e,
        lambda: e.submit(limit("A", SELL, "2", "60000", display_qty_raw=Q("1"), time_in_force=IOC)),
        -1014,
        "Unsupported order combination.",
    )
    rejects(
        e,
        lambda: e.submit(limit("A", SELL, "2", "60000", display_qty_raw=Q("0.000001"))),
        -1013,
        "Filter failure: LOT_SIZE",
    )


# -- self-trade prevention --------------------------------------------------------------
def test_stp_none_lets_an_account_trade_with_itself() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "1", "60000"))
    out = e.submit(limit("A", SELL, "1", "60000", stp=STP.NONE))
    assert kinds(out)[1:] == [(1, "TRADE", "FILLED"), (2, "TRADE", "FILLED")]
    assert free(e, "A", "USDT") == money("1000000") and free(e, "A", "BTC") == money("10")


def test_stp_expire_taker_keeps_what_traded_before() -> None:
    e = new_engine()
    e.submit(limit("B", BUY, "1", "60001"))  # 1
    e.submit(limit("A", BUY, "1", "60000"))  # 2, own
    out = e.submit(limit("A", SELL, "3", "60000", stp=STP.EXPIRE_TAKER))  # 3
    assert kinds(out) == [
        (3, "NEW", "NEW"),
        (1, "TRADE", "FILLED"),
        (3, "TRADE", "PARTIALLY_FILLED"),
        (3, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
    ]
    last = out[-1]
    assert (last.executed_qty_raw, last.prevented_qty_raw) == (Q("1"), Q("2"))
    assert last.last_prevented_qty_raw == Q("2") and last.exec_type.binance == "TRADE_PREVENTION"
    assert bids(e) == [(P("60000"), Q("1"))]  # the maker stays
    assert locked(e, "A", "BTC") == 0
    audit(e)


def test_stp_expire_maker_expires_own_orders_and_trades_on() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "1", "60001"))  # 1, own
    e.submit(limit("B", BUY, "1", "60000"))  # 2
    out = e.submit(limit("A", SELL, "1.5", "60000", stp=STP.EXPIRE_MAKER))  # 3
    assert kinds(out) == [
        (3, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (2, "TRADE", "FILLED"),
        (3, "TRADE", "PARTIALLY_FILLED"),
    ]
    assert out[1].prevented_qty_raw == Q("1")
    assert bids(e) == [] and asks(e) == [(P("60000"), Q("0.5"))]
    assert locked(e, "A", "USDT") == 0 and locked(e, "A", "BTC") == money("0.5")
    audit(e)


def test_stp_expire_both() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "1", "60000"))
    out = e.submit(limit("A", SELL, "3", "60000", stp=STP.EXPIRE_BOTH))
    assert kinds(out) == [
        (2, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (2, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
    ]
    assert (out[1].prevented_qty_raw, out[2].prevented_qty_raw) == (Q("1"), Q("3"))
    assert bids(e) == [] and asks(e) == []
    assert locked(e, "A", "USDT") == 0 and locked(e, "A", "BTC") == 0
    audit(e)


def test_stp_decrement_the_smaller_order_expires() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "6", "60000"))  # Binance's scenario G
    out = e.submit(limit("A", SELL, "2", "60000", stp=STP.DECREMENT))
    assert kinds(out) == [
        (2, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "NEW"),
        (2, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
    ]
    assert out[1].prevented_qty_raw == out[2].prevented_qty_raw == Q("2")
    assert out[1].leaves_qty_raw == Q("4")
    assert bids(e) == [(P("60000"), Q("4"))]
    assert locked(e, "A", "USDT") == money("240000")
    # the other way round: the maker is smaller and the taker trades on with others
    e.submit(limit("B", BUY, "1", "59999"))  # 3
    out = e.submit(limit("A", SELL, "6", "59999", stp=STP.DECREMENT))  # 4
    assert kinds(out) == [
        (4, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (4, "TRADE_PREVENTION", "NEW"),
        (3, "TRADE", "FILLED"),
        (4, "TRADE", "PARTIALLY_FILLED"),
    ]
    assert asks(e) == [(P("59999"), Q("1"))] and bids(e) == []
    assert e.order("A", "BTCUSDT", 4).prevented == Q("4")
    audit(e)


def test_stp_account_default_applies_to_orders_without_a_mode() -> None:
    e = new_engine()
    e.set_stp_mode("A", STP.EXPIRE_TAKER)
    e.submit(limit("A", BUY, "1", "60000"))
    out = e.submit(limit("A", SELL, "1", "60000"))
    assert out[-1].status is SimStatus.EXPIRED_IN_MATCH
    out = e.submit(limit("A", SELL, "1", "60000", stp=STP.NONE))  # the order's mode wins
    assert out[-1].status is SimStatus.FILLED


def test_stp_market_order_expire_maker_then_expires_for_liquidity() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "1", "60000"))
    out = e.submit(market("A", SELL, "1", stp=STP.EXPIRE_MAKER))
    assert kinds(out) == [
        (2, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (2, "EXPIRED", "EXPIRED"),  # Binance's scenario F
    ]
    audit(e)


# -- stops -------------------------------------------------------------------------------
def test_stop_loss_sell_triggers_on_the_last_trade_and_sweeps() -> None:
    e = new_engine()
    e.submit(limit("B", BUY, "1", "59000"))  # 1
    e.submit(limit("B", BUY, "2", "58000"))  # 2
    out = e.submit(stop("A", SELL, OrderType.STOP_MARKET, "1", "59000"))  # 3
    assert kinds(out) == [(3, "NEW", "NEW")] and locked(e, "A", "BTC") == money("1")
    out = e.submit(limit("C", SELL, "0.5", "59000"))  # 4: trades at 59000, fires 3
    assert kinds(out) == [
        (4, "NEW", "NEW"),
        (1, "TRADE", "PARTIALLY_FILLED"),
        (4, "TRADE", "FILLED"),
        (3, "TRIGGERED", "NEW"),
        (1, "TRADE", "FILLED"),
        (3, "TRADE", "PARTIALLY_FILLED"),
        (2, "TRADE", "PARTIALLY_FILLED"),
        (3, "TRADE", "FILLED"),
    ]
    assert [p for oid, _, p, _ in fills(out) if oid == 3] == [P("59000"), P("58000")]
    assert out[3].exec_type.binance == "NEW"
    assert e.last_price("BTCUSDT") == P("58000")
    rejects(
        e,
        lambda: e.submit(stop("A", SELL, OrderType.STOP_MARKET, "1", "58000")),
        -2010,
        "Order would trigger immediately.",
    )
    audit(e)


@pytest.mark.parametrize(
    ("side", "kind", "trigger", "moves"),
    [
        (BUY, OrderType.STOP_MARKET, "61000", [("60999", False), ("61000", True)]),
        (SELL, OrderType.STOP_MARKET, "59000", [("59001", False), ("59000", True)]),
        (SELL, OrderType.TAKE_PROFIT, "61000", [("60999", False), ("61000", True)]),
        (BUY, OrderType.TAKE_PROFIT, "59000", [("59001", False), ("59000", True)]),
    ],
)
def test_trigger_directions(
    side: OrderSide, kind: OrderType, trigger: str, moves: list[tuple[str, bool]]
) -> None:
    e = new_engine()
    e.set_last_price("BTCUSDT", P("60000"))
    e.submit(stop("A", side, kind, "1", trigger))
    for price, fired in moves:
        out = e.set_last_price("BTCUSDT", P(price))
        assert [r.exec_type for r in out][:1] == ([ExecType.TRIGGERED] if fired else [])
    # nothing to trade against: the market order expires
    assert [(r.exec_type, r.status) for r in out] == [
        (ExecType.TRIGGERED, SimStatus.NEW),
        (ExecType.EXPIRED, SimStatus.EXPIRED),
    ]
    audit(e)


def test_stop_limit_rests_at_its_limit_after_triggering() -> None:
    e = new_engine()
    e.set_last_price("BTCUSDT", P("60000"))
    e.submit(stop("A", BUY, OrderType.STOP_LIMIT, "1", "60500", price="60600"))
    assert locked(e, "A", "USDT") == money("60600")
    out = e.set_last_price("BTCUSDT", P("60500"))
    assert kinds(out) == [(1, "TRIGGERED", "NEW")]
    assert bids(e) == [(P("60600"), Q("1"))]
    e.submit(limit("B", SELL, "1", "60550"))
    assert e.order("A", "BTCUSDT", 1).status is SimStatus.FILLED
    assert locked(e, "A", "USDT") == 0 and free(e, "A", "USDT") == money("939400")  # maker price
    audit(e)


def test_simultaneous_triggers_run_in_order_id_order_and_cascade() -> None:
    e = new_engine()
    e.set_last_price("BTCUSDT", P("60000"))
    e.submit(limit("B", BUY, "1", "59500"))  # 1
    e.submit(limit("B", BUY, "1", "58000"))  # 2
    e.submit(stop("A", SELL, OrderType.STOP_MARKET, "1", "59000"))  # 3: fired by 4's trade
    e.submit(stop("C", SELL, OrderType.STOP_MARKET, "1", "59500"))  # 4: fired first
    e.submit(stop("D", SELL, OrderType.STOP_MARKET, "0.5", "59500"))  # 5: same trigger as 4
    out = e.set_last_price("BTCUSDT", P("59500"))
    order = [r.order_id for r in out if r.exec_type is ExecType.TRIGGERED]
    assert order == [4, 5, 3]
    assert e.order("C", "BTCUSDT", 4).status is SimStatus.FILLED  # took bid 1 @ 59500
    assert e.order("D", "BTCUSDT", 5).status is SimStatus.FILLED  # 0.5 of bid 2 @ 58000
    assert e.order("A", "BTCUSDT", 3).executed == Q("0.5")  # the rest of bid 2
    audit(e)


def test_stop_market_buy_without_funds_at_trigger_expires() -> None:
    e = new_engine()
    e.deposit("poor", "USDT", money("100"))
    e.submit(limit("B", SELL, "1", "61000"))
    e.set_last_price("BTCUSDT", P("60000"))
    e.submit(NewOrder("poor", "BTCUSDT", BUY, OrderType.STOP_MARKET, Q("1"), 0, P("60500")))
    out = e.set_last_price("BTCUSDT", P("60500"))
    assert kinds(out) == [(2, "TRIGGERED", "NEW"), (2, "EXPIRED", "EXPIRED")]
    assert free(e, "poor", "USDT") == money("100")
    audit(e)


def test_cancel_a_parked_stop() -> None:
    e = new_engine()
    e.submit(stop("A", SELL, OrderType.STOP_LIMIT, "1", "59000", price="58900"))
    out = e.cancel("A", "BTCUSDT", order_id=1)
    assert kinds(out) == [(1, "CANCELED", "CANCELED")]
    assert locked(e, "A", "BTC") == 0
    assert e.set_last_price("BTCUSDT", P("50000")) == []
    audit(e)


# -- market orders -----------------------------------------------------------------------
def test_market_buy_must_be_affordable_against_the_book() -> None:
    e = new_engine()
    e.deposit("poor", "USDT", money("50000"))
    e.submit(limit("A", SELL, "0.5", "60000"))
    e.submit(limit("A", SELL, "1", "61000"))
    rejects(
        e,
        lambda: e.submit(market("poor", BUY, "1")),
        -2010,
        "Account has insufficient balance for requested action.",
    )
    out = e.submit(market("poor", BUY, "0.8"))  # 30000 + 18300
    assert [(q, p) for oid, q, p, _ in fills(out) if oid == 3] == [
        (Q("0.5"), P("60000")),
        (Q("0.3"), P("61000")),
    ]
    assert free(e, "poor", "USDT") == money("1700")
    out = e.submit(market("B", BUY, "5"))
    assert out[-1].status is SimStatus.EXPIRED and out[-1].executed_qty_raw == Q("0.7")
    out = e.submit(market("B", SELL, "1", client_order_id="m"))
    assert kinds(out) == [(5, "NEW", "NEW"), (5, "EXPIRED", "EXPIRED")]
    assert out[0].binance_order_type == "MARKET" and locked(e, "B", "BTC") == 0
    audit(e)


def test_quote_order_qty_spends_at_most_the_amount() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "0.5", "60000"))
    e.submit(limit("A", SELL, "1", "60010"))
    usdt = free(e, "B", "USDT")
    out = e.submit(NewOrder("B", "BTCUSDT", BUY, MARKET, quote_qty_raw=P("45005")))
    # 0.5 @ 60000 = 30000; 15005 / 60010 = 0.250041..., floored to the step 0.00001
    assert out[-1].status is SimStatus.FILLED
    assert out[-1].executed_qty_raw == Q("0.75004") == out[-1].orig_qty_raw
    assert usdt - free(e, "B", "USDT") == money("45004.9004")
    e.submit(limit("C", BUY, "1", "59000"))
    out = e.submit(NewOrder("B", "BTCUSDT", SELL, MARKET, quote_qty_raw=P("5900")))
    assert out[-1].executed_qty_raw == Q("0.1") and out[-1].status is SimStatus.FILLED
    e2 = new_engine()
    rejects(
        e2,
        lambda: e2.submit(NewOrder("B", "BTCUSDT", BUY, MARKET, quote_qty_raw=P("100"))),
        -2010,
        "Order book liquidity is less than symbol minimum quantity.",
    )
    audit(e)


# -- rejections --------------------------------------------------------------------------
def _n(**kw: Any) -> NewOrder:
    base: dict[str, Any] = {
        "account": "A",
        "symbol": "BTCUSDT",
        "side": BUY,
        "order_type": LIMIT,
        "quantity_raw": Q("1"),
        "price_raw": P("60000"),
    }
    base.update(kw)
    return NewOrder(**base)


INSUFFICIENT = "Account has insufficient balance for requested action."
REJECTIONS = [
    ("symbol", _n(symbol="XXXUSDT"), -1121, "Invalid symbol."),
    ("account", _n(account="nobody"), -2015, "Invalid API-key, IP, or permissions for action."),
    ("step", _n(quantity_raw=Q("0.000001")), -1013, "Filter failure: LOT_SIZE"),
    ("max qty", _n(quantity_raw=Q("9001"), price_raw=P("10")), -1013, "Filter failure: LOT_SIZE"),
    ("tick", _n(price_raw=P("60000.001")), -1013, "Filter failure: PRICE_FILTER"),
    ("stop tick", _n(order_type=OrderType.STOP_LIMIT, trigger_raw=P("1.001")), -1013,
     "Filter failure: PRICE_FILTER"),
    ("min notional", _n(quantity_raw=Q("0.00001")), -1013, "Filter failure: NOTIONAL"),
    ("max notional", _n(quantity_raw=Q("200")), -1013, "Filter failure: NOTIONAL"),
    ("band up", _n(price_raw=P("300000.01"), quantity_raw=Q("0.001")), -1013,
     "Filter failure: PERCENT_PRICE"),
    ("band down", _n(price_raw=P("11999.99")), -1013, "Filter failure: PERCENT_PRICE"),
    ("funds buy", _n(quantity_raw=Q("20")), -2010, INSUFFICIENT),
    ("funds sell", _n(side=SELL, quantity_raw=Q("10.00001"), price_raw=P("70000")), -2010,
     INSUFFICIENT),
    ("no price", _n(price_raw=0), -1102,
     "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
    ("no qty", _n(quantity_raw=0), -1102,
     "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."),
    ("negative qty", _n(quantity_raw=-5), -1102,
     "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."),
    ("market price", _n(order_type=MARKET), -1106, "Parameter 'price' sent when not required."),
    ("limit stop", _n(trigger_raw=P("59000")), -1106,
     "Parameter 'stopPrice' sent when not required."),
    ("no stop", _n(order_type=OrderType.STOP_LIMIT), -1102,
     "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."),
    ("market empty", _n(order_type=MARKET, price_raw=0, quantity_raw=0), -1102,
     "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
    ("quote on limit", _n(quote_qty_raw=P("100")), -1106,
     "Parameter 'quoteOrderQty' sent when not required."),
    ("duplicate", _n(client_order_id="mine", price_raw=P("59000")), -2010,
     "Duplicate order sent."),
    ("side", _n(side="HOLD"), -1117, "Invalid side."),
    ("type", _n(order_type="ICEBERG"), -1116, "Invalid orderType."),
    ("tif", _n(time_in_force="GTX"), -1115, "Invalid timeInForce."),
    ("post-only stop", _n(order_type=OrderType.STOP_LIMIT, trigger_raw=P("61000"),
                          post_only=True), -1014, "Unsupported order combination."),
]  # fmt: skip


@pytest.mark.parametrize(("name", "req", "code", "msg"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_rejections_carry_binance_code_and_message_and_change_nothing(
    name: str, req: NewOrder, code: int, msg: str
) -> None:
    e = new_engine()
    e.submit(limit("B", SELL, "1", "60000"))  # a last price of 60000 for the bands
    e.submit(limit("C", BUY, "1", "60000"))
    e.submit(limit("A", BUY, "0.1", "59000", client_order_id="mine"))
    e.submit(stop("A", SELL, OrderType.STOP_MARKET, "0.1", "50000"))
    rejects(e, lambda: e.submit(req), code, msg)
    before = e.snapshot()
    (report,) = e.process(req)
    assert (report.exec_type, report.status) == (ExecType.REJECTED, SimStatus.REJECTED)
    assert (report.reject_code, report.reject_reason, report.seq, report.order_id) == (
        code,
        msg,
        0,
        -1,
    )
    assert e.snapshot() == before


def test_process_returns_reports_when_accepted() -> None:
    e = new_engine()
    assert kinds(e.process(limit("A", BUY, "1", "60000"))) == [(1, "NEW", "NEW")]


# -- cancel and amend --------------------------------------------------------------------
def test_cancel_by_id_or_client_id_releases_the_lock() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "1", "60000", client_order_id="x1"))
    e.submit(limit("A", SELL, "1", "61000"))
    assert locked(e, "A", "USDT") == money("60000")
    out = e.cancel("A", "BTCUSDT", client_order_id="x1")
    assert kinds(out) == [(1, "CANCELED", "CANCELED")] and out[0].client_order_id == "x1"
    assert locked(e, "A", "USDT") == 0 and free(e, "A", "USDT") == money("1000000")
    unknown = "Unknown order sent."
    rejects(e, lambda: e.cancel("A", "BTCUSDT", client_order_id="x1"), -2011, unknown)
    rejects(e, lambda: e.cancel("A", "BTCUSDT", order_id=1), -2011, unknown)
    rejects(e, lambda: e.cancel("B", "BTCUSDT", order_id=2), -2011, unknown)  # not B's
    rejects(e, lambda: e.cancel("A", "ETHUSDT", order_id=2), -2011, unknown)  # other symbol
    rejects(e, lambda: e.cancel("A", "BTCUSDT", order_id=99), -2011, unknown)
    rejects(e, lambda: e.cancel("A", "BTCUSDT", 2, "wrong"), -2011, unknown)
    rejects(
        e,
        lambda: e.cancel("A", "BTCUSDT"),
        -2011,
        "Cancel order is invalid. Check origClOrdId and orderId.",
    )
    rejects(e, lambda: e.cancel("A", "NOPE", order_id=2), -1121, "Invalid symbol.")
    assert e.order("A", "BTCUSDT", 1).status is SimStatus.CANCELED  # still queryable
    assert e.order("A", "BTCUSDT", client_order_id="x1").order_id == 1
    assert e.order("A", "BTCUSDT", client_order_id="sim-2").order_id == 2
    rejects(e, lambda: e.order("B", "BTCUSDT", client_order_id="x1"), -2011, unknown)
    e.submit(limit("A", BUY, "1", "60000", client_order_id="x1"))  # the id is free again
    assert e.order("A", "BTCUSDT", client_order_id="x1").order_id == 3  # the latest
    out = e.cancel_all("A", "BTCUSDT")
    assert [r.order_id for r in out] == [2, 3]
    assert e.open_orders_of("A") == [] and asks(e) == [] and bids(e) == []
    rejects(e, lambda: e.cancel_all("A", "BTCUSDT"), -2011, unknown)
    audit(e)


def test_amend_reduces_and_keeps_the_queue_place() -> None:
    e = new_engine()
    e.submit(limit("A", BUY, "1", "60000"))  # 1
    e.submit(limit("B", BUY, "1", "60000"))  # 2
    out = e.amend("A", "BTCUSDT", Q("0.5"), order_id=1)
    assert kinds(out) == [(1, "REPLACED", "NEW")] and out[0].orig_qty_raw == Q("0.5")
    assert locked(e, "A", "USDT") == money("30000")
    out = e.submit(limit("C", SELL, "0.7", "60000"))
    makers = [(oid, q) for oid, q, _, liq in fills(out) if liq is LiquiditySide.MAKER]
    assert makers == [(1, Q("0.5")), (2, Q("0.2"))]
    assert locked(e, "A", "USDT") == 0
    rejects(
        e,
        lambda: e.amend("B", "BTCUSDT", Q("1"), order_id=2),
        -2010,
        "Order amend (quantity increase) is not supported.",
    )
    rejects(
        e,
        lambda: e.amend("B", "BTCUSDT", Q("0.2"), order_id=2),
        -1013,
        "newQty must be greater than the executed quantity.",
    )
    rejects(
        e,
        lambda: e.amend("B", "BTCUSDT", Q("0.5000001"), order_id=2),
        -1013,
        "Filter failure: LOT_SIZE",
    )
    out = e.amend("B", "BTCUSDT", Q("0.5"), order_id=2)
    assert out[0].leaves_qty_raw == Q("0.3") and bids(e) == [(P("60000"), Q("0.3"))]
    assert locked(e, "B", "USDT") == money("18000")
    audit(e)


def test_amend_an_iceberg_and_a_parked_stop() -> None:
    e = new_engine()
    e.submit(limit("A", SELL, "4", "60000", display_qty_raw=Q("1")))
    e.amend("A", "BTCUSDT", Q("0.5"), order_id=1)
    assert asks(e) == [(P("60000"), Q("0.5"))] and locked(e, "A", "BTC") == money("0.5")
    e.submit(stop("A", SELL, OrderType.STOP_MARKET, "2", "50000"))
    e.amend("A", "BTCUSDT", Q("1"), order_id=2)
    assert locked(e, "A", "BTC") == money("1.5")
    audit(e)


def test_deposits_and_withdrawals() -> None:
    e = new_engine(accounts="")
    e.deposit("A", "USDT", money("5"))
    rejects(e, lambda: e.deposit("A", "USDT", -money("6")), -2010, INSUFFICIENT)
    rejects(e, lambda: e.deposit("B", "USDT", -1), -2010, INSUFFICIENT)
    e.deposit("A", "USDT", -money("5"))
    assert free(e, "A", "USDT") == 0
    with pytest.raises(BinanceError):
        e.account("B")
    with pytest.raises(BinanceError):
        e.set_stp_mode("B", STP.NONE)
    with pytest.raises(BinanceError):
        e.book("NOPE")


def test_enum_mappings() -> None:
    assert binance_order_type(OrderType.STOP_LIMIT) == "STOP_LOSS_LIMIT"
    assert binance_order_type(LIMIT, post_only=True) == "LIMIT_MAKER"
    assert from_binance_order_type("LIMIT_MAKER") == (LIMIT, True)
    assert from_binance_order_type("STOP_LOSS") == (OrderType.STOP_MARKET, False)
    assert to_bot4_status(SimStatus.EXPIRED_IN_MATCH).value == "EXPIRED"
    assert to_bot4_status(SimStatus.NEW).value == "ACCEPTED"


# -- fees --------------------------------------------------------------------------------
def test_fees_are_taken_from_what_each_side_receives() -> None:
    e = new_engine(FeeSchedule.flat("0.001", "0.001"))
    e.submit(limit("A", SELL, "1", "60000"))
    out = e.submit(limit("B", BUY, "0.4", "60000"))
    maker, taker = out[1], out[2]
    assert (maker.fee_money, maker.fee_asset) == (money("24"), "USDT")
    assert (taker.fee_money, taker.fee_asset) == (money("0.0004"), "BTC")
    assert free(e, "A", "USDT") == money("1023976")
    assert free(e, "B", "BTC") == money("10.3996")
    assert e.fees_collected == {"USDT": money("24"), "BTC": money("0.0004")}


def test_fee_rounding_is_up_to_the_unit_and_base_fees_are_whole_units() -> None:
    e = new_engine(FeeSchedule.flat("0.001", "0.00075"), instrument=tiny_btcusdt())
    e.submit(limit("A", SELL, "0.00001", "60000.01"))
    out = e.submit(limit("B", BUY, "0.00001", "60000.01"))
    maker, taker = out[1], out[2]
    # 0.6000001 USDT x 0.001 = 0.0006000001 -> up to 8 decimals
    assert maker.fee_money == money("0.00060001")
    # 0.00001 BTC x 0.00075 = 0.0000000075 BTC -> up to 0.00000001
    assert taker.fee_money == money("0.00000001") and taker.fee_money % SCALE == 0
    fees = FeeSchedule.flat("0.5", "0.5")
    assert fees.charge(10**9, 99, 100) == 10**9  # never more than was received


def test_maker_rebates_are_paid_in_quote_and_rounded_down() -> None:
    fees = FeeSchedule.flat("0.001", "0.0005")
    fees.set_override("A", "-0.0001", "0.0005")
    e = new_engine(fees, instrument=tiny_btcusdt())
    e.submit(limit("A", BUY, "0.00001", "60000.01"))
    out = e.submit(limit("B", SELL, "0.00001", "60000.01"))
    rebate, taker = out[1], out[2]
    # 0.6000001 x 0.0001 = 0.00006000001 -> down to 0.00006, paid in USDT
    assert (rebate.fee_money, rebate.fee_asset) == (-money("0.00006"), "USDT")
    # 0.6000001 x 0.0005 = 0.00030000005 -> up to 0.00030001
    assert taker.fee_money == money("0.00030001")
    assert free(e, "A", "USDT") == money("1000000") - money("0.6000001") + money("0.00006")
    assert free(e, "A", "BTC") == money("10.00001")
    assert e.fees_collected == {"USDT": money("0.00024001")}
    fees.clear_override("A")
    assert fees.rates("A", 0) == (1, 1000, 1, 2000)


def test_volume_tiers_follow_the_trailing_30_days() -> None:
    tiers = [
        FeeTier.create("T0", 0, "0.001", "0.001"),
        FeeTier.create("T1", 100_000, "0.0005", "0.0008"),
    ]
    fees = FeeSchedule(tiers)
    clock = TestClock(T0)
    e = MatchingEngine([btcusdt()], fees, clock)
    for acc in "AB":
        e.deposit(acc, "USDT", money("10000000"))
        e.deposit(acc, "BTC", money("100"))
    day0 = T0 // DAY_NS

    def trade(qty: str) -> tuple[int, int]:
        e.submit(limit("A", SELL, qty, "60000"))
        out = e.submit(limit("B", BUY, qty, "60000"))
        return out[1].fee_money, out[2].fee_money

    assert trade("2") == (money("120"), money("0.002"))  # 120,000 USDT traded, tier T0
    assert trade("1") == (money("60"), money("0.001"))  # today's volume counts tomorrow
    assert fees.volume("A", day0) == 0 and fees.tier("A", day0).name == "T0"
    clock.advance(DAY_NS)
    assert fees.volume("A", day0 + 1) == money("180000") and fees.tier("B", day0 + 1).name == "T1"
    assert trade("0.001") == (money("0.03"), money("0.0000008"))  # T1: 0.05 % / 0.08 %
    clock.advance(29 * DAY_NS)  # day 30: day 0 still in the window
    assert fees.tier("A", day0 + 30).name == "T1"
    clock.advance(DAY_NS)  # day 31: only day 1's 60 USDT left
    assert fees.volume("A", day0 + 31) == money("60") and fees.tier("A", day0 + 31).name == "T0"
    assert trade("1") == (money("60"), money("0.001"))


def test_volume_conversion_and_schedule_validation() -> None:
    fees = FeeSchedule(volume_rates={"USDT": 1, "BTC": "60000"})
    fees.record("A", "USDT", money("10"), 5)
    fees.record("A", "BTC", money("0.5"), 5)
    fees.record("A", "EUR", money("1000"), 5)  # not convertible: does not count
    assert fees.volume("A", 6) == money("30010")
    assert fees.tier("A", 6).name == "VIP0" and len(fees.tiers) == 10
    fees.rates("A", 7)
    fees.record("A", "USDT", money("5000000"), 6)  # back-dated: the cached rate goes
    assert fees.rates("A", 7) == (1, 1250, 1, 1000)  # VIP2: maker 0.08 %, taker 0.1 %
    with pytest.raises(ValueError):
        FeeTier.create("x", 0, "0.001", "-0.001")  # a taker rebate
    with pytest.raises(ValueError):
        FeeTier.create("x", 0, "1", "0.001")
    with pytest.raises(ValueError):
        FeeTier.create("x", -1, "0", "0")
    with pytest.raises(ValueError):
        FeeSchedule([FeeTier.create("x", 10, "0", "0")])
    t = FeeTier.create("x", 0, "0", "0")
    with pytest.raises(ValueError):
        FeeSchedule([t, FeeTier.create("y", 0, "0", "0")])
    with pytest.raises(ValueError):
        FeeSchedule([t], fee_decimals=10)
    with pytest.raises(ValueError):
        FeeSchedule([t], window_days=0)


# -- random sessions ---------------------------------------------------------------------
ASSETS = ("USDT", "BTC")
OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["limit", "limit", "limit", "limit", "market", "quote", "stop", "cancel", "amend",
             "last"]
        ),
        st.sampled_from("ABC"),
        st.booleans(),
        st.integers(-8, 8),  # price, in steps of 10 USDT around 60000
        st.integers(1, 40),  # quantity, in 0.01 BTC
        st.sampled_from([GTC, GTC, GTC, IOC, FOK]),
        st.sampled_from([None, *STP]),
        st.integers(0, 3),  # 1: post-only, 2: iceberg
        st.sampled_from([OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT,
                         OrderType.TAKE_PROFIT_LIMIT]),
        st.integers(0, 5),  # hours to move the clock
    ),
    min_size=10,
    max_size=60,
)  # fmt: skip


def totals(e: MatchingEngine) -> dict[str, int]:
    out = {a: e.fees_collected.get(a, 0) for a in ASSETS}
    for state in e.accounts.values():
        for asset, bal in state.account.balances.items():
            out[asset] = out.get(asset, 0) + bal.free + bal.locked
    return out


def session_request(e: MatchingEngine, op: tuple[Any, ...]) -> Callable[[], object]:
    kind, acc, is_buy, dp, n, tif, stp, flag, stop_type, _ = op
    side = BUY if is_buy else SELL
    price = P("60000") + dp * P("10")
    qty = n * Q("0.01")
    if kind == "limit":
        display = qty // 3 // Q("0.01") * Q("0.01") if flag == 2 else 0
        req = NewOrder(acc, "BTCUSDT", side, LIMIT, qty, price, 0, tif, flag == 1 and tif is GTC,
                       display if 0 < display < qty and tif is GTC else 0, "", stp)  # fmt: skip
    elif kind == "market":
        req = NewOrder(acc, "BTCUSDT", side, MARKET, qty, stp=stp)
    elif kind == "quote":
        req = NewOrder(acc, "BTCUSDT", side, MARKET, stp=stp, quote_qty_raw=n * P("300"))
    elif kind == "stop":
        limit_price = price + (P("20") if is_buy else -P("20")) if stop_type.has_price else 0
        req = NewOrder(acc, "BTCUSDT", side, stop_type, qty, limit_price, price, stp=stp)
    elif kind == "last":
        return lambda: e.set_last_price("BTCUSDT", price)
    else:
        mine = e.open_orders_of(acc)
        if not mine:
            return lambda: e.cancel(acc, "BTCUSDT", order_id=10**6)
        o = mine[n % len(mine)]
        if kind == "cancel":
            return lambda: e.cancel(acc, "BTCUSDT", order_id=o.order_id)
        done = o.executed + o.prevented
        return lambda: e.amend(acc, "BTCUSDT", done + (o.orig_qty - done) // 2, o.order_id)
    return lambda: e.submit(req)


@settings(max_examples=400)
@given(OPS)
def test_random_sessions_conserve_assets_and_keep_every_invariant(ops: list[Any]) -> None:
    fees = FeeSchedule.flat("0.0002", "0.001")
    fees.set_override("C", "-0.0001", "0.0005")  # a market maker with a rebate
    clock = TestClock(T0)
    e = MatchingEngine([btcusdt()], fees, clock)
    for acc in "ABC":  # enough for a few orders, so some are refused for funds
        e.deposit(acc, "USDT", money("30000"))
        e.deposit(acc, "BTC", money("0.5"))
    start = totals(e)
    last_seq = 0
    for op in ops:
        clock.advance(op[-1] * 3_600 * 10**9)
        before = e.snapshot()
        try:
            reports = session_request(e, op)()
        except BinanceError:
            assert e.snapshot() == before  # a rejection changes nothing
            continue
        if isinstance(reports, list):
            if op[0] == "limit" and op[5] is FOK:  # all or nothing, whatever STP does
                mine = [r for r in reports if r.order_id == reports[0].order_id]
                traded = sum(r.last_qty_raw for r in mine if r.exec_type is ExecType.TRADE)
                assert traded in (0, mine[0].orig_qty_raw)
            for r in reports:
                assert r.seq == last_seq + 1
                last_seq = r.seq
                if r.exec_type is ExecType.TRADE and r.fee_asset == "BTC":
                    assert r.fee_money % SCALE == 0
        audit(e)  # books never crossed, locks = open orders, no negative balance
        assert totals(e) == start
    trades = e.drain_trades()
    assert [t.trade_id for t in trades] == list(range(1, len(trades) + 1))


# -- price-time priority against a brute-force reference -------------------------------
class RefMatcher:
    """Resting orders in a plain list; the best maker is found by sorting every time."""

    def __init__(self) -> None:
        self.resting: list[dict[str, Any]] = []
        self.stamp = 0
        self.next_id = 1

    def _tick(self) -> int:
        self.stamp += 1
        return self.stamp

    def submit(
        self, is_buy: bool, price: int, qty: int, tif: TimeInForce, post_only: bool, display: int
    ) -> list[tuple[int, int, int, int]] | None:
        """Trades (maker id, taker id, price, qty); None if refused (post-only)."""

        def crosses(o: dict[str, Any]) -> bool:
            if o["buy"] is is_buy:
                return False
            return not price or (o["price"] <= price if is_buy else o["price"] >= price)

        if post_only and any(crosses(o) for o in self.resting):
            return None
        oid = self.next_id
        self.next_id += 1
        if tif is FOK and sum(o["qty"] for o in self.resting if crosses(o)) < qty:
            return []
        trades = []
        rem = qty
        while rem:
            candidates = [o for o in self.resting if crosses(o)]
            if not candidates:
                break
            best = min(candidates, key=lambda o: (o["price"] if is_buy else -o["price"], o["t"]))
            fill = min(rem, best["vis"])
            trades.append((best["id"], oid, best["price"], fill))
            rem -= fill
            best["qty"] -= fill
            best["vis"] -= fill
            if not best["vis"]:
                if best["qty"]:
                    best["vis"] = min(best["disp"], best["qty"])
                    best["t"] = self._tick()
                else:
                    self.resting.remove(best)
        if rem and price and tif is GTC:
            vis = display if 0 < display < rem else rem
            self.resting.append(
                {"id": oid, "buy": is_buy, "price": price, "qty": rem, "vis": vis,
                 "disp": display, "t": self._tick()}
            )  # fmt: skip
        return trades

    def side(self, is_buy: bool) -> list[tuple[int, int, int, int]]:
        mine = [o for o in self.resting if o["buy"] is is_buy]
        mine.sort(key=lambda o: (-o["price"] if is_buy else o["price"], o["t"]))
        return [(o["id"], o["price"], o["qty"], o["vis"]) for o in mine]


PRIORITY_OPS = st.lists(
    st.tuples(
        st.sampled_from(["limit", "limit", "limit", "market", "cancel"]),
        st.sampled_from("ABC"),
        st.booleans(),
        st.integers(-5, 5),
        st.integers(1, 12),
        st.sampled_from([GTC, GTC, GTC, IOC, FOK]),
        st.integers(0, 5),  # 1: post-only; 2-3: iceberg with a slice of that many lots
    ),
    min_size=10,
    max_size=80,
)


@settings(max_examples=400)
@given(PRIORITY_OPS)
def test_fills_match_a_brute_force_price_time_reference(ops: list[Any]) -> None:
    e = MatchingEngine([btcusdt()], FeeSchedule.flat(0, 0), TestClock(T0))
    for acc in "ABC":
        e.deposit(acc, "USDT", money("100000000"))
        e.deposit(acc, "BTC", money("1000"))
    ref = RefMatcher()
    lot = Q("0.01")
    for kind, acc, is_buy, dp, n, tif, flag in ops:
        side = BUY if is_buy else SELL
        price = P("60000") + dp * P("1")
        if kind == "cancel":
            if ref.resting:
                victim = ref.resting[n % len(ref.resting)]
                owner = e.orders[victim["id"]].account
                e.cancel(owner, "BTCUSDT", order_id=victim["id"])
                ref.resting.remove(victim)
            continue
        if kind == "market":
            price, tif = 0, IOC
        post_only = flag == 1 and tif is GTC and bool(price)
        display = flag * lot if flag >= 2 and tif is GTC and price and flag < n else 0
        expected = ref.submit(is_buy, price, n * lot, tif, post_only, display)
        req = NewOrder(acc, "BTCUSDT", side, LIMIT if price else MARKET, n * lot, price, 0,
                       tif if price else GTC, post_only, display)  # fmt: skip
        if expected is None:
            with pytest.raises(BinanceError):
                e.submit(req)
            continue
        reports = e.submit(req)
        got = []
        pending: dict[int, ExecutionReport] = {}
        for r in reports:
            if r.exec_type is ExecType.TRADE and r.liquidity is LiquiditySide.MAKER:
                pending[r.trade_id] = r
            elif r.exec_type is ExecType.TRADE:
                m = pending.pop(r.trade_id)
                got.append((m.order_id, r.order_id, r.last_price_raw, r.last_qty_raw))
        assert got == expected
        book = e.book("BTCUSDT")
        for side_is_buy in (True, False):
            mine = [(o.order_id, o.price, o.qty, o.visible) for o in book.side_orders(side_is_buy)]
            assert mine == ref.side(side_is_buy)
    audit(e)


@settings(max_examples=300)
@given(
    st.one_of(st.integers(1, 10**15), st.integers(1, 10**8).map(lambda n: n * 10**7)),
    st.one_of(st.integers(1, 10**13), st.integers(1, 10**7).map(lambda n: n * 10**4)),
    st.integers(1, 10**8).map(lambda n: n * 10**7),
)
def test_fast_filter_checks_agree_with_the_instrument(price: int, qty: int, last: int) -> None:
    """The engine's inline integer filters refuse exactly what the core's Instrument
    refuses, with the same filter name."""
    inst = btcusdt()
    e = new_engine()
    e.deposit("A", "USDT", 10**40)
    e.set_last_price("BTCUSDT", last)
    expected = None
    try:
        inst.check_price(price)
        inst.check_qty(qty)
        inst.check_notional(price, qty)
        inst.check_percent_price(price, last)
    except InstrumentRuleViolation as exc:
        expected = exc.rule
    got = None
    try:
        e.submit(NewOrder("A", "BTCUSDT", BUY, LIMIT, qty, price))
    except FilterFailure as exc:
        got = exc.filter
    assert got == expected
