"""Simulation models: latency, partial fills, queue position, book walking, bar paths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot4.core.enums import OrderSide, OrderType
from bot4.core.numbers import MONEY_SCALE, SCALE, to_raw
from bot4.sim.models import (
    Bar,
    CancelPolicy,
    LatencyModel,
    LatencyOp,
    LogNormalLatency,
    PartialFillModel,
    PartialFillParams,
    QueuePositionFillModel,
    Trigger,
    bar_path,
    order_in_bar,
    touch_in_bar,
    walk_book,
)

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def P(text: str) -> int:
    return to_raw(text, "test")


# -- latency -----------------------------------------------------------------------------

PARAMS = {
    LatencyOp.SUBMIT: LogNormalLatency(mu=math.log(2e6), sigma=0.5, floor_ns=1_000_000),
    LatencyOp.CANCEL: LogNormalLatency(mu=math.log(1e6), sigma=0.3, floor_ns=500_000),
    LatencyOp.MARKET_DATA: LogNormalLatency(mu=math.log(5e5), sigma=0.8, floor_ns=0),
}


def test_latency_same_seed_same_numbers_other_seed_other_numbers() -> None:
    a = LatencyModel(PARAMS, seed=11).sample_many(LatencyOp.SUBMIT, 1000)
    b = LatencyModel(PARAMS, seed=11).sample_many(LatencyOp.SUBMIT, 1000)
    c = LatencyModel(PARAMS, seed=12).sample_many(LatencyOp.SUBMIT, 1000)
    assert a.dtype == np.int64 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_latency_one_by_one_equals_batch_and_streams_are_independent() -> None:
    batch = LatencyModel(PARAMS, seed=3, block=7).sample_many(LatencyOp.SUBMIT, 20)
    model = LatencyModel(PARAMS, seed=3, block=7)
    model.sample_many(LatencyOp.MARKET_DATA, 100)  # must not shift the submit stream
    singles = [model.sample(LatencyOp.SUBMIT) for _ in range(20)]
    assert singles == batch.tolist()
    big_block = LatencyModel(PARAMS, seed=3, block=1024).sample_many(LatencyOp.SUBMIT, 20)
    assert big_block.tolist() == batch.tolist()  # the block size does not change values


@pytest.mark.parametrize("op", list(LatencyOp))
def test_latency_sample_moments_match_the_log_normal(op: LatencyOp) -> None:
    p = PARAMS[op]
    x = LatencyModel(PARAMS, seed=2024).sample_many(op, 200_000)
    assert x.min() >= p.floor_ns
    assert abs(x.mean() / p.mean_ns - 1) < 0.005
    assert abs(np.median(x) / p.median_ns - 1) < 0.005
    logs = np.log(x - p.floor_ns)
    assert abs(logs.std() - p.sigma) < 0.01


def test_calibrated_latency_is_the_stored_fit() -> None:
    model = LatencyModel.calibrated(seed=1)
    md = model.params(LatencyOp.MARKET_DATA)
    assert 100e6 < md.floor_ns < 120e6 and 0.3 < md.sigma < 1.0  # ~115 ms feed minimum
    assert model.params(LatencyOp.SUBMIT) == md
    x = model.sample_many(LatencyOp.MARKET_DATA, 100_000)
    assert abs(x.mean() / md.mean_ns - 1) < 0.01


def test_latency_validation() -> None:
    with pytest.raises(ValueError):
        LogNormalLatency(mu=1.0, sigma=-0.1, floor_ns=0)
    with pytest.raises(ValueError):
        LogNormalLatency(mu=float("nan"), sigma=0.1, floor_ns=0)
    with pytest.raises(ValueError):
        LatencyModel({LatencyOp.SUBMIT: PARAMS[LatencyOp.SUBMIT]})
    with pytest.raises(ValueError):
        LatencyModel(PARAMS, seed=-1)


# -- statistical partial fills -----------------------------------------------------------


def test_partial_fills_deterministic_and_bounded() -> None:
    params = PartialFillParams(arrival_rate_per_s=20.0, beta_a=0.5, beta_b=2.0, p_full=0.05)
    runs = []
    for _ in range(2):
        model = PartialFillModel(params, seed=9)
        remaining, out = 7 * SCALE, []
        for _ in range(50):
            fills = model.fills(remaining, 100_000_000, step=1000)
            for offset, qty in fills:
                assert 0 <= offset < 100_000_000 and 0 < qty <= remaining
                assert qty % 1000 == 0 or qty == remaining
                remaining -= qty
            out.append(fills)
        runs.append(out)
    assert runs[0] == runs[1]
    assert any(runs[0]) and remaining >= 0


def test_partial_fill_arrival_rate_and_mean_fraction() -> None:
    params = PartialFillParams(arrival_rate_per_s=10.0, beta_a=2.0, beta_b=50.0)
    model = PartialFillModel(params, seed=4)
    counts, fractions = [], []
    for _ in range(3000):
        remaining = 10**15
        fills = model.fills(remaining, 1_000_000_000)
        counts.append(len(fills))
        for _, qty in fills:
            fractions.append(qty / remaining)
            remaining -= qty
    assert abs(np.mean(counts) / 10.0 - 1) < 0.02
    assert abs(np.var(counts) / 10.0 - 1) < 0.1  # Poisson: variance = mean
    assert abs(np.mean(fractions) / (2 / 52) - 1) < 0.02


def test_partial_fill_full_take_and_no_arrivals() -> None:
    all_at_once = PartialFillModel(PartialFillParams(1000.0, 1.0, 1.0, p_full=1.0), seed=0)
    fills = all_at_once.fills(5 * SCALE, 1_000_000_000)
    assert len(fills) == 1 and fills[0][1] == 5 * SCALE
    silent = PartialFillModel(PartialFillParams(0.0, 1.0, 1.0), seed=0)
    assert silent.fills(5 * SCALE, 10**12) == []
    assert PartialFillModel.calibrated(seed=1).params.arrival_rate_per_s > 1.0


# -- queue position --------------------------------------------------------------------


def test_queue_fills_only_beyond_the_queue_ahead_with_partial_fills() -> None:
    q = QueuePositionFillModel()
    q.join("a", BUY, price=100, qty=3, level_qty=10)
    assert q.on_trade(100, 4, taker_side=SELL) == [] and q.queue_ahead("a") == 6
    assert q.on_trade(101, 50, taker_side=SELL) == []  # above our bid: not ours
    assert q.on_trade(100, 50, taker_side=BUY) == []  # a buyer lifting asks at 100
    (fill,) = q.on_trade(100, 8, taker_side=SELL)  # 6 ahead, 2 for us
    assert (fill.qty, fill.remaining, fill.trade_through) == (2, 1, False)
    (fill,) = q.on_trade(100, 5, taker_side=SELL)
    assert (fill.qty, fill.remaining) == (1, 0) and "a" not in q


def test_queue_trade_through_fills_from_that_volume() -> None:
    q = QueuePositionFillModel()
    q.join("a", BUY, price=100, qty=5, level_qty=1_000)
    (fill,) = q.on_trade(99, 2, taker_side=SELL)  # a seller went below our bid
    assert (fill.qty, fill.remaining, fill.trade_through) == (2, 3, True)
    assert q.queue_ahead("a") == 0
    q.join("s", SELL, price=200, qty=4, level_qty=10)
    (fill,) = q.on_trade(201, 9, taker_side=BUY)
    assert (fill.order_id, fill.qty, fill.remaining) == ("s", 4, 0)


def test_queue_cancels_proportional_versus_pessimistic() -> None:
    prop = QueuePositionFillModel(CancelPolicy.PROPORTIONAL)
    pess = QueuePositionFillModel(CancelPolicy.PESSIMISTIC)
    for q in (prop, pess):
        q.join("a", SELL, price=100, qty=1, level_qty=10)
        q.on_level(SELL, 100, 20)  # 10 joined behind us
        q.on_level(SELL, 100, 15)  # 5 cancelled somewhere in the 20
    assert prop.queue_ahead("a") == 8  # 10 - floor(5 * 10 / 20)
    assert pess.queue_ahead("a") == 10  # all behind us
    for q in (prop, pess):
        q.on_level(SELL, 100, 4)  # 11 more cancelled
    assert prop.queue_ahead("a") == 3  # 8 - floor(11 * 8 / 15)
    assert pess.queue_ahead("a") == 4  # capped: never more ahead than displayed


def test_queue_trades_are_not_counted_twice_as_cancels() -> None:
    q = QueuePositionFillModel(CancelPolicy.PROPORTIONAL)
    q.join("a", BUY, price=100, qty=1, level_qty=10)
    q.on_trade(100, 4, taker_side=SELL)  # queue 6; the level shows 6 next
    q.on_level(BUY, 100, 6)  # explained by the trade: no cancellation
    assert q.queue_ahead("a") == 6
    q.on_trade(100, 2, taker_side=SELL)  # queue 4, level 4 after trade
    q.on_level(BUY, 100, 2)  # 2 more gone than traded: cancels 2 of 4 -> ahead 4 - 2
    assert q.queue_ahead("a") == 2


def test_queue_two_own_orders_share_the_taker_volume_in_join_order() -> None:
    q = QueuePositionFillModel()
    q.join("first", BUY, 100, qty=2, level_qty=5)
    q.join("second", BUY, 100, qty=3, level_qty=6)  # one more unit joined in between
    fills = q.on_trade(100, 9, taker_side=SELL)
    # 5 ahead of "first", then "first" takes 2; "second" has 6 historical ahead, of
    # which 9 - 2 = 7 available consume 6, leaving 1 for it.
    assert [(f.order_id, f.qty) for f in fills] == [("first", 2), ("second", 1)]
    assert q.remaining("second") == 2 and q.queue_ahead("second") == 0


def test_queue_l1_best_moving_away_empties_our_level() -> None:
    q = QueuePositionFillModel(CancelPolicy.PESSIMISTIC)
    q.join("a", BUY, 100, qty=3, level_qty=50)
    q.on_best(BUY, 99, 7)  # best bid now below ours: our level emptied without trades
    assert q.queue_ahead("a") == 0
    (fill,) = q.on_trade(100, 1, taker_side=SELL)
    assert fill.qty == 1


def test_queue_on_bars_through_touch_and_validation() -> None:
    q = QueuePositionFillModel()
    q.join("b", BUY, 100, qty=5, level_qty=3)
    q.join("s", SELL, 110, qty=5, level_qty=3)
    assert q.on_bar(high=110, low=100, volume=1_000) == []  # touches only: no fill
    fills = q.on_bar(high=111, low=99, volume=4)  # through both, 4 traded each way
    assert sorted((f.order_id, f.qty, f.trade_through) for f in fills) == [
        ("b", 4, True),
        ("s", 4, True),
    ]
    half = QueuePositionFillModel(bar_touch_share="0.5")
    half.join("b", BUY, 100, qty=5, level_qty=3)
    (fill,) = half.on_bar(high=105, low=100, volume=10)  # 5 at 100: 3 ahead, 2 ours
    assert (fill.qty, fill.trade_through) == (2, False)
    with pytest.raises(ValueError):
        q.join("b2", BUY, 100, qty=0, level_qty=1)
    with pytest.raises(ValueError):
        q.join("s", SELL, 100, qty=1, level_qty=1)  # already resting
    q.remove("s")
    assert "s" not in q


# -- walking the book --------------------------------------------------------------------

ASKS = [(P("100.00"), P("1")), (P("100.50"), P("2")), (P("101.00"), P("5"))]
BIDS = [(P("100.00"), P("1")), (P("99.00"), P("1"))]


def test_walk_book_buy_exact_numbers() -> None:
    w = walk_book(ASKS, P("2.5"))
    assert w.fills == ((P("100.00"), P("1")), (P("100.50"), P("1.5")))
    assert w.notional == 250_750_000_000_000_000_000 == 25075 * MONEY_SCALE // 100
    assert w.avg_price == P("100.3") and w.filled_qty == P("2.5") and w.unfilled_qty == 0
    assert w.slippage == 75 * MONEY_SCALE // 100  # 250.75 - 2.5 x 100.00
    assert w.slippage_bps == pytest.approx(30.0)


def test_walk_book_sell_rounding_limit_and_thin_book() -> None:
    w = walk_book(BIDS, P("1.5"))
    assert w.notional == 1495 * MONEY_SCALE // 10 and w.avg_price == 99_666_666_667
    assert w.slippage == MONEY_SCALE // 2
    lim = walk_book(ASKS, P("5"), side=BUY, limit_price=P("100.50"))
    assert lim.filled_qty == P("3") and lim.unfilled_qty == P("2")
    thin = walk_book(ASKS, P("10"))
    assert thin.filled_qty == P("8") and thin.unfilled_qty == P("2")
    none = walk_book(ASKS, P("1"), side=BUY, limit_price=P("99"))
    assert none.fills == () and none.avg_price is None and none.slippage == 0
    with pytest.raises(ValueError):
        walk_book([ASKS[1], ASKS[0]], P("3"), side=BUY)  # asks must ascend
    with pytest.raises(ValueError):
        walk_book([ASKS[0], ASKS[2], ASKS[1]], P("9"))  # not monotonic
    with pytest.raises(ValueError):
        walk_book(ASKS, 0)


# -- intra-bar path ----------------------------------------------------------------------

UP = Bar(open=100, high=110, low=95, close=105)
DOWN = Bar(open=100, high=104, low=90, close=92)


def test_bar_path_order() -> None:
    assert bar_path(UP) == (100, 95, 110, 105)  # open -> low -> high -> close
    assert bar_path(DOWN) == (100, 104, 90, 92)  # open -> high -> low -> close
    assert bar_path(Bar(100, 101, 99, 100)) == (100, 99, 101, 100)  # doji counts as up
    with pytest.raises(ValueError):
        Bar(open=100, high=99, low=90, close=95)


def test_up_bar_limits_stops_and_oco_order() -> None:
    buy = order_in_bar(UP, BUY, OrderType.LIMIT, price=97)
    assert (buy.fill_price, buy.fill_distance, buy.gapped) == (97, 3, False)
    take = order_in_bar(UP, SELL, OrderType.LIMIT, price=108)
    assert (take.fill_price, take.fill_distance) == (108, 5 + 13)
    stop = order_in_bar(UP, SELL, OrderType.STOP_MARKET, trigger_price=96)
    assert (stop.fill_price, stop.fill_distance) == (96, 4)
    assert stop.fill_distance is not None and take.fill_distance is not None
    assert stop.fill_distance < take.fill_distance  # the stop-loss is hit first
    tp = order_in_bar(UP, SELL, OrderType.TAKE_PROFIT, trigger_price=108)
    assert (tp.fill_price, tp.trigger_distance) == (108, 18)
    assert order_in_bar(UP, BUY, OrderType.MARKET).fill_price == 100


def test_down_bar_path() -> None:
    stop_buy = order_in_bar(DOWN, BUY, OrderType.STOP_MARKET, trigger_price=105)
    assert not stop_buy.triggered and not stop_buy.filled
    stop_buy = order_in_bar(DOWN, BUY, OrderType.STOP_MARKET, trigger_price=103)
    assert (stop_buy.fill_price, stop_buy.fill_distance) == (103, 3)
    buy = order_in_bar(DOWN, BUY, OrderType.LIMIT, price=91)
    assert (buy.fill_price, buy.fill_distance) == (91, 4 + 13)


def test_gap_through_a_stop_fills_at_the_open() -> None:
    gap_down = Bar(open=90, high=93, low=88, close=91)  # previous close was ~100
    stop = order_in_bar(gap_down, SELL, OrderType.STOP_MARKET, trigger_price=96)
    assert (stop.fill_price, stop.fill_distance, stop.gapped) == (90, 0, True)  # worse
    limit = order_in_bar(gap_down, BUY, OrderType.LIMIT, price=97)
    assert (limit.fill_price, limit.gapped) == (90, True)  # better than the limit
    gap_up = Bar(open=120, high=125, low=118, close=119)
    stop_buy = order_in_bar(gap_up, BUY, OrderType.STOP_MARKET, trigger_price=110)
    assert (stop_buy.fill_price, stop_buy.gapped) == (120, True)


def test_stop_limit_and_touch_versus_through() -> None:
    sl = order_in_bar(DOWN, BUY, OrderType.STOP_LIMIT, trigger_price=103, price=102)
    assert (sl.trigger_distance, sl.fill_price, sl.fill_distance) == (3, 102, 4 + 2)
    stuck = order_in_bar(DOWN, BUY, OrderType.STOP_LIMIT, trigger_price=103, price=80)
    assert stuck.triggered and not stuck.filled
    marketable = order_in_bar(DOWN, BUY, OrderType.STOP_LIMIT, trigger_price=103, price=105)
    assert (marketable.fill_price, marketable.fill_distance) == (103, 3)
    touch = order_in_bar(UP, BUY, OrderType.LIMIT, price=95)
    assert touch.fill_price == 95
    assert not order_in_bar(UP, BUY, OrderType.LIMIT, price=95, limit_through=True).filled
    assert touch_in_bar(UP, 96, Trigger.AT_OR_BELOW, strict=True) == (96, 4)
    assert touch_in_bar(UP, 96, Trigger.AT_OR_BELOW, start=10) is None  # after the low
    with pytest.raises(ValueError):
        order_in_bar(UP, BUY, OrderType.LIMIT)
