"""The order manager: typed rejections that change nothing, funds, linked orders."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from bot4.core.errors import (
    DuplicateClientOrderId,
    InstrumentRuleViolation,
    InsufficientBalance,
    InvalidTransition,
    OverfillError,
    TimestampOutOfWindow,
    UnknownInstrument,
    UnknownOrder,
    ValidationError,
)
from bot4.oms.idempotency import BoundedTTLSet
from bot4.oms.manager import OrderManager
from bot4.oms.requests import CancelOrder, ModifyOrder, OrderRequest, SubmitOrder
from tests.conftest import T0, btcusdt

BUY, SELL = OrderSide.BUY, OrderSide.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET


def limit(side: OrderSide, qty: object, price: object, **kw: object) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, LIMIT, qty, price, **kw)  # type: ignore[arg-type]


def usdt(om: OrderManager) -> tuple[Decimal, Decimal]:
    return om.state.account.free("USDT"), om.state.account.locked("USDT")


BAD_REQUESTS = [
    ("quantity", "must be > 0", limit(BUY, "0", "100")),
    ("quantity", "must be > 0", limit(BUY, "-1", "100")),
    ("quantity", "must be finite", limit(BUY, "NaN", "100")),
    ("quantity", "must be finite", limit(BUY, "Infinity", "100")),
    ("quantity", "not a binary float", limit(BUY, 0.5, "100")),
    ("quantity", "LOT_SIZE", limit(BUY, "0.000011", "100")),
    ("quantity", "LOT_SIZE", limit(BUY, "9001", "100")),
    ("price", "must be > 0", limit(BUY, "1", "0")),
    ("price", "must be > 0", limit(BUY, "1", "-5")),
    ("price", "must be finite", limit(BUY, "1", "-Infinity")),
    ("price", "must be finite", limit(BUY, "1", "sNaN")),
    ("price", "PRICE_FILTER", limit(BUY, "1", "100.001")),
    ("price", "required for LIMIT", OrderRequest("BTCUSDT", BUY, LIMIT, "1")),
    ("price", "not allowed for MARKET", OrderRequest("BTCUSDT", BUY, MARKET, "1", "5")),
    ("notional", "NOTIONAL", limit(BUY, "0.001", "100")),
    ("symbol", "unknown symbol", OrderRequest("XRPUSDT", BUY, MARKET, "1")),
    ("client_order_id", "must match", limit(BUY, "1", "100", client_order_id="has space")),
    ("client_order_id", "must match", limit(BUY, "1", "100", client_order_id="x" * 37)),
    ("trigger_price", "required", OrderRequest("BTCUSDT", SELL, OrderType.STOP_MARKET, "1")),
    (
        "trigger_price",
        "PRICE_FILTER",
        OrderRequest("BTCUSDT", SELL, OrderType.STOP_MARKET, "1", trigger_price="9.999"),
    ),
    (
        "post_only",
        "only for LIMIT GTC",
        limit(BUY, "1", "100", post_only=True, time_in_force=TimeInForce.IOC),
    ),
    ("display_qty", "less than quantity", limit(BUY, "1", "100", display_qty="1")),
    ("display_qty", "LOT_SIZE", limit(BUY, "1", "100", display_qty="0.000001")),
    ("reduce_only", "would open or increase", limit(BUY, "1", "100", reduce_only=True)),
    ("quantity", "needs", limit(BUY, "100", "50000")),  # 5M USDT > 1M free
    ("quantity", "needs", limit(SELL, "11", "50000")),  # 11 BTC > 10 free
    ("side", "must be an OrderSide", OrderRequest("BTCUSDT", "BUY", LIMIT, "1", "100")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("field, rule, request_", BAD_REQUESTS)
def test_bad_input_gets_typed_error_naming_field_and_changes_nothing(
    om: OrderManager, field: str, rule: str, request_: OrderRequest
) -> None:
    om.submit(limit(BUY, "1", "30000"))  # some state to leave untouched
    before = om.state.snapshot()
    outbox = list(om.outbox)
    with pytest.raises(ValidationError) as err:
        om.submit(request_)
    assert err.value.field == field
    assert rule in err.value.rule or rule in str(err.value)
    assert om.state.snapshot() == before
    assert list(om.outbox) == outbox


def test_duplicate_client_order_id_is_refused(om: OrderManager) -> None:
    om.submit(limit(BUY, "1", "30000", client_order_id="my-1"))
    before = om.state.snapshot()
    with pytest.raises(DuplicateClientOrderId) as err:
        om.submit(limit(BUY, "1", "30000", client_order_id="my-1"))
    assert err.value.field == "client_order_id"
    assert om.state.snapshot() == before


def test_duplicate_stays_refused_after_the_order_is_forgotten_until_ttl() -> None:
    clock = TestClock(T0)
    om = OrderManager([btcusdt()], clock=clock, dedup=BoundedTTLSet(capacity=10, ttl_ns=10**12))
    om.deposit("USDT", "100000")
    om.submit(limit(BUY, "0.1", "30000", client_order_id="abc"))
    fresh = OrderManager([btcusdt()], clock=clock, dedup=om.dedup)  # same dedup store
    fresh.deposit("USDT", "100000")
    with pytest.raises(DuplicateClientOrderId):
        fresh.submit(limit(BUY, "0.1", "30000", client_order_id="abc"))
    clock.advance(10**12 + 1)
    assert fresh.submit(limit(BUY, "0.1", "30000", client_order_id="abc")).status is (
        OrderStatus.SUBMITTED
    )


@pytest.mark.parametrize(
    "offset_ms, rule",
    [(-5001, "older than the receive window"), (1001, "too far in the future")],
)
def test_stale_or_future_commands_are_refused(
    om: OrderManager, clock: TestClock, offset_ms: int, rule: str
) -> None:
    before = om.state.snapshot()
    with pytest.raises(TimestampOutOfWindow) as err:
        om.submit(limit(BUY, "1", "30000"), ts=clock.now_ns() + offset_ms * 1_000_000)
    assert err.value.field == "timestamp" and err.value.rule == rule
    with pytest.raises(TimestampOutOfWindow):
        om.cancel("nope", ts=clock.now_ns() + offset_ms * 1_000_000)
    assert om.state.snapshot() == before


@pytest.mark.parametrize("offset_ms", [-5000, 0, 1000])
def test_timestamps_at_the_window_edges_pass(
    om: OrderManager, clock: TestClock, offset_ms: int
) -> None:
    om.submit(limit(BUY, "1", "30000"), ts=clock.now_ns() + offset_ms * 1_000_000)


def test_funds_locked_on_acceptance_released_on_fill_and_cancel(om: OrderManager) -> None:
    o = om.submit(limit(BUY, "2", "30000"))
    assert usdt(om) == (Decimal(1000000), 0)
    assert om.state.account.available("USDT") == 940000 * 10**18  # promised, not locked
    om.on_accepted(o.client_order_id, "1")
    assert usdt(om) == (Decimal(940000), Decimal(60000))
    om.on_fill(o.client_order_id, "t1", "0.5", "29990", fee="15", fee_asset="USDT")
    # 0.5 x 30000 released from the lock, 0.5 x 29990 + 15 fee paid from free.
    assert usdt(om) == (Decimal(940000) + 15000 - Decimal("14995") - 15, Decimal(45000))
    assert om.state.account.total("BTC") == Decimal("10.5")
    om.cancel(o.client_order_id)
    assert o.status is OrderStatus.PENDING_CANCEL
    assert om.outbox[-1] == CancelOrder(o.client_order_id)
    om.on_fill(o.client_order_id, "t2", "0.5", "30000")  # raced the cancel: still applied
    om.on_canceled(o.client_order_id)
    assert o.status is OrderStatus.CANCELED and o.filled_qty == 1
    assert usdt(om) == (Decimal(1000000) - Decimal("14995") - 15 - 15000, 0)
    assert om.on_canceled(o.client_order_id) is False  # a repeated report is a no-op


def test_sell_locks_base_and_insufficient_after_promise(om: OrderManager) -> None:
    om.submit(limit(SELL, "6", "70000"))
    with pytest.raises(InsufficientBalance) as err:
        om.submit(limit(SELL, "5", "70000"))  # 6 of 10 BTC already promised
    assert err.value.field == "quantity"


def test_fill_deduplicated_by_trade_id(om: OrderManager) -> None:
    o = om.submit(limit(BUY, "1", "30000"))
    assert om.on_fill(o.client_order_id, "T9", "0.25", "30000") is True
    seq = om.state.last_seq
    assert om.on_fill(o.client_order_id, "T9", "0.25", "30000") is False
    assert om.state.last_seq == seq and o.filled_qty == Decimal("0.25")
    assert om.duplicate_fills == 1


def test_bad_fill_reports_are_refused_without_change(om: OrderManager) -> None:
    o = om.submit(limit(BUY, "1", "30000"))
    before = om.state.snapshot()
    for kwargs, exc in [
        ({"qty": "0"}, ValidationError),
        ({"qty": "-1"}, ValidationError),
        ({"qty": "NaN"}, ValidationError),
        ({"price": "0"}, ValidationError),
        ({"price": "Infinity"}, ValidationError),
        ({"qty": "1.5"}, OverfillError),
        ({"trade_id": ""}, ValidationError),
        ({"fee": "0.0000000001", "fee_asset": "BTC"}, ValidationError),
    ]:
        args = {"trade_id": "t", "qty": "0.5", "price": "30000"} | kwargs
        with pytest.raises(exc):
            om.on_fill(o.client_order_id, **args)  # type: ignore[arg-type]
    with pytest.raises(UnknownOrder):
        om.on_fill("nope", "t", "1", "1")
    with pytest.raises(UnknownOrder):
        om.cancel("nope")
    assert om.state.snapshot() == before


def test_illegal_venue_report_is_refused(om: OrderManager) -> None:
    o = om.submit(limit(BUY, "1", "30000"))
    om.on_rejected(o.client_order_id, "-2010 insufficient balance")
    before = om.state.snapshot()
    with pytest.raises(InvalidTransition):
        om.on_fill(o.client_order_id, "t", "1", "30000")
    with pytest.raises(InvalidTransition):
        om.cancel(o.client_order_id)
    assert om.state.snapshot() == before


def test_reduce_only_within_position_passes(om: OrderManager) -> None:
    o = om.submit(OrderRequest("BTCUSDT", BUY, MARKET, "0.3"))
    om.on_fill(o.client_order_id, "t", "0.3", "50000")
    with pytest.raises(ValidationError):
        om.submit(limit(SELL, "0.30001", "60000", reduce_only=True))
    r = om.submit(limit(SELL, "0.3", "60000", reduce_only=True))
    assert r.reduce_only and r.status is OrderStatus.SUBMITTED


def test_oco_partial_fill_reduces_and_full_fill_cancels_sibling(om: OrderManager) -> None:
    tp, sl = om.submit_oco(
        limit(SELL, "2", "70000"),
        OrderRequest("BTCUSDT", SELL, OrderType.STOP_LIMIT, "2", "49000", trigger_price="50000"),
    )
    om.on_accepted(tp.client_order_id, "1")
    om.on_accepted(sl.client_order_id, "2")
    assert om.state.account.locked("BTC") == 2  # one lock for the pair, not two
    om.on_fill(tp.client_order_id, "a", "0.5", "70000")
    assert sl.quantity == Decimal("1.5") and sl.status is OrderStatus.ACCEPTED
    assert ModifyOrder(sl.client_order_id, 1_500_000_000) in om.outbox
    with pytest.raises(OverfillError):
        om.on_fill(sl.client_order_id, "b", "1.6", "49000")  # legs would exceed 2
    om.on_fill(sl.client_order_id, "b", "1", "49000")
    assert tp.quantity == 1 and tp.leaves_qty == Decimal("0.5")  # 2 - 1.5 filled
    om.on_fill(tp.client_order_id, "c", "0.5", "70000")
    assert tp.status is OrderStatus.FILLED and sl.status is OrderStatus.CANCELED
    assert om.state.account.locked("BTC") == 0
    assert om.state.account.total("BTC") == 8


def test_cancel_of_an_oco_leg_cancels_the_list(om: OrderManager) -> None:
    tp, sl = om.submit_oco(
        limit(SELL, "1", "70000"),
        OrderRequest("BTCUSDT", SELL, OrderType.STOP_MARKET, "1", trigger_price="50000"),
    )
    om.cancel(sl.client_order_id)
    assert {tp.status, sl.status} == {OrderStatus.PENDING_CANCEL}
    assert CancelOrder(tp.client_order_id) in om.outbox


def test_bracket_exits_follow_entry_fills(om: OrderManager) -> None:
    entry, sl, tp = om.submit_bracket(limit(BUY, "1", "60000"), "58000", "63000")
    assert [o.status for o in (entry, sl, tp)] == [
        OrderStatus.SUBMITTED,
        OrderStatus.INITIALIZED,
        OrderStatus.INITIALIZED,
    ]
    assert list(om.outbox) == [SubmitOrder(entry.client_order_id)]
    om.on_accepted(entry.client_order_id, "1")
    om.on_fill(entry.client_order_id, "e1", "0.4", "60000")
    assert sl.quantity == tp.quantity == Decimal("0.4")
    assert sl.status is tp.status is OrderStatus.SUBMITTED
    om.on_fill(entry.client_order_id, "e2", "0.6", "60000")
    assert sl.quantity == tp.quantity == 1
    om.on_fill(sl.client_order_id, "s1", "1", "58000")
    assert tp.status is OrderStatus.CANCELED
    pos = om.state.positions["BTCUSDT"]
    assert pos.qty_raw == 0 and pos.realized_pnl == Decimal(-2000)


def test_bracket_exit_before_full_entry_cancels_the_entry_rest(om: OrderManager) -> None:
    entry, sl, tp = om.submit_bracket(limit(BUY, "1", "60000"), "58000", "63000")
    om.on_fill(entry.client_order_id, "e1", "0.4", "60000")
    om.on_fill(tp.client_order_id, "t1", "0.4", "63000")
    assert sl.status is OrderStatus.CANCELED
    assert entry.status is OrderStatus.PENDING_CANCEL
    assert CancelOrder(entry.client_order_id) in om.outbox


def test_bracket_entry_canceled_unfilled_cancels_exits(om: OrderManager) -> None:
    entry, sl, tp = om.submit_bracket(limit(BUY, "1", "60000"), "58000", "63000")
    om.cancel(entry.client_order_id)
    om.on_canceled(entry.client_order_id)
    assert sl.status is tp.status is OrderStatus.CANCELED


def test_bracket_exits_net_of_base_fee(om: OrderManager) -> None:
    entry, sl, tp = om.submit_bracket(limit(BUY, "1", "60000"), "58000", "63000")
    om.on_fill(entry.client_order_id, "e1", "1", "60000", fee="0.001", fee_asset="BTC")
    assert sl.quantity == tp.quantity == Decimal("0.999")
    assert om.state.positions["BTCUSDT"].quantity == Decimal("0.999")


@pytest.mark.parametrize(
    "stop, take, field",
    [("61000", "63000", "stop_loss"), ("58000", "57000", "stop_loss")],
)
def test_bracket_with_stop_on_wrong_side_is_refused(
    om: OrderManager, stop: str, take: str, field: str
) -> None:
    before = om.state.snapshot()
    with pytest.raises(ValidationError) as err:
        om.submit_bracket(limit(BUY, "1", "60000"), stop, take)
    assert err.value.field == field
    assert om.state.snapshot() == before and not om.outbox


def test_deposit_validation(om: OrderManager) -> None:
    before = om.state.snapshot()
    for amount, exc in [
        ("0", ValidationError),
        (0.5, ValidationError),
        ("-2000000", InsufficientBalance),
        ("NaN", ValidationError),
    ]:
        with pytest.raises(exc):
            om.deposit("USDT", amount)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        om.deposit("", "1")
    assert om.state.snapshot() == before


def test_unknown_instrument_is_typed() -> None:
    om = OrderManager([btcusdt()], clock=TestClock(T0))
    with pytest.raises(UnknownInstrument) as err:
        om.submit(OrderRequest("ETHBTC", BUY, MARKET, "1"))
    assert err.value.field == "symbol"


def test_dedup_store_stays_bounded_over_weeks() -> None:
    store = BoundedTTLSet(capacity=1000, ttl_ns=3600 * 10**9)
    t = T0
    for i in range(50_000):  # one id every 30 s for ~17 days
        t += 30 * 10**9
        assert store.add(f"id-{i}", t)
        assert len(store) <= 1000
    assert len(store) == 120  # an hour of ids at one per 30 s
    assert not store.add("id-49999", t)
    assert store.add("id-0", t)  # long expired: may be used again


@pytest.mark.parametrize(
    "price, ok", [("250000", True), ("250000.01", False), ("10000", True), ("9999.99", False)]
)
def test_percent_price_band_around_reference(om: OrderManager, price: str, ok: bool) -> None:
    om.set_reference_price("BTCUSDT", "50000")  # band [10000, 250000]: 0.2x .. 5x
    req = limit(SELL, "0.001", price)
    if ok:
        assert om.submit(req).price == Decimal(price)
    else:
        before = om.state.snapshot()
        with pytest.raises(InstrumentRuleViolation) as err:
            om.submit(req)
        assert err.value.rule == "PERCENT_PRICE"
        assert om.state.snapshot() == before


def test_bracket_exits_relative_to_the_fill_price(om: OrderManager) -> None:
    om.set_reference_price("BTCUSDT", "50000")
    entry, sl, tp = om.submit_bracket(
        OrderRequest("BTCUSDT", BUY, MARKET, "1"), stop_loss_pct="0.5", take_profit_pct="1.25"
    )
    assert sl.trigger_raw == 49750 * 10**9  # provisional, from the reference price
    om.on_fill(entry.client_order_id, "e1", "1", "50123.45")
    # 50123.45 x 0.995 = 49872.83275 -> a sell stop rounds up to the tick: 49872.84.
    assert sl.trigger_raw == 49_872_840_000_000
    # 50123.45 x 1.0125 = 50749.993125 -> a sell limit rounds up: 50749.99 + 0.01.
    assert tp.price == Decimal("50750.00")
    with pytest.raises(ValidationError) as err:
        om.submit_bracket(OrderRequest("BTCUSDT", BUY, MARKET, "1"), stop_loss_pct="100")
    assert err.value.field == "stop_loss_pct"
    with pytest.raises(ValidationError):
        om.submit_bracket(OrderRequest("BTCUSDT", BUY, MARKET, "1"), "49000", stop_loss_pct="1")
    before = om.state.snapshot()
    for bad in (0.5, [1], "abc", Decimal("NaN")):  # a float, an unhashable, junk: typed errors
        with pytest.raises(ValidationError) as err:
            om.submit_bracket(OrderRequest("BTCUSDT", BUY, MARKET, "1"), stop_loss_pct=bad)  # type: ignore[arg-type]
        assert err.value.field == "stop_loss_pct"
    assert om.state.snapshot() == before


@pytest.mark.parametrize("prefix", ["has space", "x" * 40])
def test_a_bad_id_prefix_is_refused_before_anything_changes(prefix: str) -> None:
    om = OrderManager([btcusdt()], clock=TestClock(T0), id_prefix=prefix)
    om.deposit("USDT", "1000")
    before = om.state.snapshot()
    with pytest.raises(ValidationError) as info:
        om.submit(OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, Decimal("0.001"), "100"))
    assert info.value.field in ("id_prefix", "client_order_id")
    assert om.state.snapshot() == before and not om.outbox


def test_listeners_see_their_kinds_in_subscription_order(om: OrderManager) -> None:
    """A narrowed listener gets only its kinds; everyone still hears in subscription
    order (the risk engine must see a fill before a strategy reacts to it), and a
    listener added later -- by ``subscribe`` or by appending -- is routed too."""
    heard: list[tuple[str, str]] = []
    om.subscribe(lambda ev: heard.append(("all", ev.kind)))
    om.subscribe(lambda ev: heard.append(("fills", ev.kind)), kinds=["OrderFilled"])
    order = om.submit(limit(BUY, "1", "100"))
    om.on_accepted(order.client_order_id, "v1")
    om.listeners.append(lambda ev: heard.append(("late", ev.kind)))
    om.on_fill(order.client_order_id, "t1", "1", "100")
    assert heard == [
        ("all", "OrderInitialized"),
        ("all", "OrderSubmitted"),
        ("all", "OrderAccepted"),
        ("all", "OrderFilled"),
        ("fills", "OrderFilled"),
        ("late", "OrderFilled"),
    ]


def test_validated_fields_are_order_initialized_fields_in_order(om: OrderManager) -> None:
    """``_validate`` returns OrderInitialized's fields after the header positionally
    (the one-order submit builds the event from them): its field list must follow the
    class, and a submitted order's event must carry each value under its own name."""
    from dataclasses import fields

    from bot4.core.events import OrderInitialized
    from bot4.oms.manager import _ORDER_FIELDS

    names = [f.name for f in fields(OrderInitialized)]
    assert list(_ORDER_FIELDS) == names[3 : 3 + len(_ORDER_FIELDS)]
    seen: list[object] = []
    om.subscribe(seen.append, kinds=["OrderInitialized"])
    req = OrderRequest(
        "BTCUSDT", OrderSide.SELL, OrderType.STOP_LIMIT, Decimal("0.5"), "101",
        trigger_price="102", time_in_force=TimeInForce.IOC, client_order_id="c-9",
    )  # fmt: skip
    om.deposit("BTC", "1")
    om.submit(req)
    (ev,) = seen
    assert isinstance(ev, OrderInitialized)
    assert (ev.client_order_id, ev.symbol, ev.side, ev.order_type) == (
        "c-9", "BTCUSDT", OrderSide.SELL, OrderType.STOP_LIMIT,
    )  # fmt: skip
    assert (ev.quantity_raw, ev.price_raw, ev.trigger_raw) == (
        5 * 10**8, 101 * 10**9, 102 * 10**9,
    )  # fmt: skip
    assert (ev.time_in_force, ev.post_only, ev.reduce_only, ev.display_qty_raw) == (
        TimeInForce.IOC, False, False, 0,
    )  # fmt: skip
    assert ev.ts_event == ev.ts_recv == om.clock.now_ns()
