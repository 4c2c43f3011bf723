"""Backtest metrics on hand-built results whose answers are known exactly, plus the
degenerate cases (no trades, flat equity, one bar) that must give None, never NaN."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pytest

from bot4.backtest.metrics import Metrics, compute_metrics, infer_periods
from bot4.backtest.result import BacktestResult, DenialRecord, FillRecord, TradeRecord

T0 = 1_747_699_200 * 10**9
MIN = 60 * 10**9
DAY = 86_400 * 10**9
YEAR = 365 * DAY


def make_result(
    equity: Sequence[float] | np.ndarray,
    *,
    step_ns: int = MIN,
    ts: Sequence[int] | np.ndarray | None = None,
    initial: float | None = None,
    final: float | None = None,
    trades: list[TradeRecord] | None = None,
    fills: list[FillRecord] | None = None,
    denials: list[DenialRecord] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> BacktestResult:
    eq = np.asarray(equity, dtype=np.float64)
    stamps = (
        np.asarray(ts, dtype=np.int64)
        if ts is not None
        else T0 + np.arange(eq.size, dtype=np.int64) * step_ns
    )
    first = float(eq[0]) if eq.size else 100.0
    last = float(eq[-1]) if eq.size else 100.0
    return BacktestResult(
        strategy="test",
        params={},
        symbols=["BTCUSDT"],
        quote="USDT",
        start_ns=start_ns if start_ns is not None else int(stamps[0]) if eq.size else T0,
        end_ns=end_ns if end_ns is not None else int(stamps[-1]) if eq.size else T0,
        bars=int(eq.size),
        initial_equity=Decimal(str(initial if initial is not None else first)),
        final_equity=Decimal(str(final if final is not None else last)),
        equity_ts_ns=stamps,
        equity=eq,
        fills=fills or [],
        trades=trades or [],
        denials=denials or [],
    )


def trade(
    pnl: str, entry_ns: int = T0, exit_ns: int = T0 + MIN, symbol: str = "BTCUSDT"
) -> TradeRecord:
    return TradeRecord(
        symbol=symbol,
        side="LONG",
        entry_ts_ns=entry_ns,
        exit_ts_ns=exit_ns,
        qty=Decimal("1"),
        entry_price=Decimal("100"),
        exit_price=Decimal("100") + Decimal(pnl),
        pnl=Decimal(pnl),
        fees=Decimal("0"),
        return_pct=float(Decimal(pnl) / 100),
    )


def fill(symbol: str, price: str, fee: str, fee_asset: str) -> FillRecord:
    return FillRecord(
        T0, symbol, "BUY", Decimal("1"), Decimal(price), Decimal(fee), fee_asset, "c", "TAKER"
    )


def assert_json_safe(m: Metrics) -> dict[str, object]:
    d = m.to_dict()
    json.dumps(d, allow_nan=False)  # raises on NaN / inf
    assert set(d) == set(Metrics.__dataclass_fields__)
    return d


# --------------------------------------------------------------------------- drawdown


def test_drawdown_100_120_90_110() -> None:
    m = compute_metrics(make_result([100, 120, 90, 110], initial=100, final=110))
    assert m.max_drawdown == pytest.approx(0.25)  # 120 -> 90
    assert m.max_drawdown_peak_ns == T0 + MIN
    assert m.max_drawdown_trough_ns == T0 + 2 * MIN
    # Under water from the 120 peak (bar 1) to the last bar (3), never recovered.
    assert m.max_drawdown_duration_bars == 2
    assert m.max_drawdown_duration_s == 120.0
    assert m.max_drawdown_start_ns == T0 + MIN
    assert m.max_drawdown_end_ns == T0 + 3 * MIN
    assert m.max_drawdown_recovered is False
    assert m.total_return == pytest.approx(0.10)
    assert m.bars == 4
    assert m.periods_per_year == 525_600
    assert_json_safe(m)


def test_longest_underwater_is_not_the_deepest_drawdown() -> None:
    # Deep but short: 120 -> 90, recovered at bar 3 (130). Shallow but long: 130 -> 125,
    # 125, 129, recovered at bar 7 (131). Irregular spacing checks time vs bar counting.
    eq = [100, 120, 90, 130, 125, 125, 129, 131]
    ts = [T0 + k * MIN for k in (0, 1, 2, 3, 4, 5, 6, 7)]
    ts[2] = T0 + 2 * MIN + 30 * 10**9  # irregular, still increasing
    m = compute_metrics(make_result(eq, ts=ts))
    assert m.max_drawdown == pytest.approx(0.25)
    assert (m.max_drawdown_peak_ns, m.max_drawdown_trough_ns) == (ts[1], ts[2])
    assert m.max_drawdown_duration_bars == 4  # bar 3 (peak 130) -> bar 7 (131)
    assert m.max_drawdown_duration_s == (ts[7] - ts[3]) / 1e9
    assert (m.max_drawdown_start_ns, m.max_drawdown_end_ns) == (ts[3], ts[7])
    assert m.max_drawdown_recovered is True


def test_recovery_to_exactly_the_peak_ends_the_episode() -> None:
    m = compute_metrics(make_result([100, 80, 100, 90]))
    assert m.max_drawdown == pytest.approx(0.2)
    # Episodes: bars 0->2 (recovered at 100 exactly) and 2->3 (open): the first is longer.
    assert m.max_drawdown_duration_bars == 2
    assert m.max_drawdown_recovered is True


def test_drawdown_matches_bruteforce_on_random_walk() -> None:
    rng = np.random.default_rng(1)
    eq = 100 * np.cumprod(1 + rng.normal(0, 0.01, 2_000))
    m = compute_metrics(make_result(eq))
    worst, peak, longest, start, under = 0.0, eq[0], 0, 0, False
    for i, e in enumerate(eq):
        if e >= peak:
            if under:  # an underwater episode ends at this recovery
                longest = max(longest, i - start)
            peak, start, under = e, i, False
        else:
            under = True
        worst = max(worst, 1 - e / peak)
    if under:  # still under water at the end
        longest = max(longest, len(eq) - 1 - start)
    assert m.max_drawdown == pytest.approx(worst)
    assert m.max_drawdown_duration_bars == longest


# --------------------------------------------------------------------------- returns


def test_sharpe_sortino_volatility_match_numpy() -> None:
    rng = np.random.default_rng(42)
    r = rng.normal(0.0002, 0.003, 5_000)
    eq = 1_000 * np.concatenate(([1.0], np.cumprod(1 + r)))
    m = compute_metrics(make_result(eq))
    ppy = 525_600
    assert m.periods_per_year == ppy
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy), rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    assert m.sortino == pytest.approx(r.mean() / downside * math.sqrt(ppy), rel=1e-9)
    assert m.annual_volatility == pytest.approx(r.std(ddof=1) * math.sqrt(ppy), rel=1e-9)

    daily = compute_metrics(make_result(eq, step_ns=DAY))
    assert daily.periods_per_year == 365
    assert daily.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365), rel=1e-9)

    given = compute_metrics(make_result(eq, step_ns=DAY), periods_per_year=252)
    assert given.periods_per_year == 252
    assert given.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-9)


def test_event_stamped_curve_is_scored_on_a_minute_grid() -> None:
    """A tick backtest's curve has a point per event at irregular times: its returns and
    P come from the last equity at or before each minute (what a 1m bar run would see);
    the drawdown still sees every point, the dip between two minutes included."""
    rng = np.random.default_rng(7)
    minutes = rng.normal(0.0001, 0.002, 600)
    at_minute = 1_000 * np.concatenate(([1.0], np.cumprod(1 + minutes)))
    ts: list[int] = [T0]
    eq: list[float] = [float(at_minute[0])]
    for k in range(1, at_minute.size):  # a burst of events inside each minute
        for j, offset in enumerate(sorted(rng.integers(1, MIN // 2, size=5))):
            ts.append(T0 + (k - 1) * MIN + int(offset))
            eq.append(float(at_minute[k - 1]) * (0.9 if (k, j) == (300, 2) else 1.0))
        ts.append(T0 + k * MIN)  # the minute's last event lands on the boundary
        eq.append(float(at_minute[k]))
    m = compute_metrics(make_result(eq, ts=ts))
    r = at_minute[1:] / at_minute[:-1] - 1
    assert m.periods_per_year == 525_600
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(525_600), rel=1e-9)
    assert m.max_drawdown >= 0.1 - 1e-9  # the dip between minutes 299 and 300
    regular = compute_metrics(make_result(at_minute))  # bars: unchanged behaviour
    assert regular.sharpe == pytest.approx(m.sharpe, rel=1e-9)


def test_known_small_return_series() -> None:
    # Returns +10 %, -10 %, +10 %: mean 1/30, sample std sqrt(4/300)=0.11547.
    eq = [100, 110, 99, 108.9]
    m = compute_metrics(make_result(eq, step_ns=DAY))
    r = np.array([0.1, -0.1, 0.1])
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert m.sortino == pytest.approx(r.mean() / math.sqrt(0.01 / 3) * math.sqrt(365))


def test_no_losing_bar_gives_no_sortino() -> None:
    m = compute_metrics(make_result([100, 101, 103, 104]))
    assert m.sortino is None
    assert m.sharpe is not None and m.sharpe > 0


def test_cagr_and_calmar() -> None:
    # 100 -> 400 over exactly two years is +100 % a year; the dip 200 -> 150 is 25 %.
    eq = [100, 200, 150, 400]
    r = make_result(eq, start_ns=T0, end_ns=T0 + 2 * YEAR, step_ns=2 * YEAR // 3)
    m = compute_metrics(r)
    assert m.total_return == pytest.approx(3.0)
    assert m.annual_return == pytest.approx(1.0)
    assert m.max_drawdown == pytest.approx(0.25)
    assert m.calmar == pytest.approx(4.0)


def test_cagr_falls_back_to_curve_span_and_handles_wipeout() -> None:
    r = make_result([100, 121], step_ns=YEAR, start_ns=T0, end_ns=T0)
    assert compute_metrics(r).annual_return == pytest.approx(0.21)
    wiped = compute_metrics(make_result([100, 50, 0], step_ns=DAY, final=0))
    assert wiped.total_return == -1.0
    assert wiped.annual_return == -1.0


def test_cagr_that_overflows_is_none() -> None:
    # +10 % in three minutes compounds beyond a float over a year.
    m = compute_metrics(make_result([100, 120, 90, 110]))
    assert m.annual_return is None
    assert m.calmar is None
    assert_json_safe(m)


# --------------------------------------------------------------------------- trades


def test_trade_statistics() -> None:
    trades = [trade(p) for p in ("10", "-5", "20", "-10", "0")]
    m = compute_metrics(make_result([100, 115], trades=trades))
    assert (m.n_trades, m.n_wins, m.n_losses) == (5, 2, 2)
    assert m.win_rate == pytest.approx(0.4)
    assert m.gross_profit == 30 and m.gross_loss == 15
    assert m.profit_factor == pytest.approx(2.0)
    assert m.expectancy == pytest.approx(3.0)
    assert m.avg_win == pytest.approx(15.0)
    assert m.avg_loss == pytest.approx(-7.5)
    assert (m.best_trade, m.worst_trade) == (20.0, -10.0)


def test_no_losses_gives_no_profit_factor() -> None:
    m = compute_metrics(make_result([100, 110], trades=[trade("4"), trade("6")]))
    assert m.profit_factor is None
    assert m.win_rate == 1.0
    assert m.avg_loss is None
    assert m.gross_loss == 0.0 and math.copysign(1, m.gross_loss) == 1  # not -0.0
    assert_json_safe(m)


# --------------------------------------------------------------------------- exposure


def test_exposure_on_known_timeline() -> None:
    ts = [T0 + k * MIN for k in range(10)]

    def exposure(*spans: tuple[int, int]) -> float | None:
        trades = [trade("1", entry, exit_) for entry, exit_ in spans]
        return compute_metrics(make_result([100.0] * 10, trades=trades)).exposure

    assert exposure() == 0.0
    assert exposure((ts[2], ts[5])) == pytest.approx(0.3)  # held at closes 2, 3, 4
    # Overlapping trades (two symbols) count each bar once: closes 2..6.
    assert exposure((ts[2], ts[5]), (ts[4], ts[7])) == pytest.approx(0.5)
    # A round trip between two closes exposes the bar it happened in (close 9).
    intrabar = (ts[8] + 10 * 10**9, ts[8] + 20 * 10**9)
    assert exposure((ts[2], ts[5]), (ts[4], ts[7]), intrabar) == pytest.approx(0.6)
    # Entered before the first bar: held at close 0.
    assert exposure((T0 - MIN, ts[1])) == pytest.approx(0.1)
    # Held to the end.
    assert exposure((ts[0], ts[9] + MIN)) == 1.0


# --------------------------------------------------------------------------- fees, denials


def test_fees_in_quote_base_and_other_assets() -> None:
    fills = [
        fill("BTCUSDT", "50000", "0.1", "USDT"),  # quote: 0.1
        fill("BTCUSDT", "50000", "0.001", "BTC"),  # base: 0.001 * 50,000 = 50
        fill("ETH/USDT:USDT", "2000", "0.01", "ETH"),  # ccxt symbol, base: 20
        fill("BTCUSDT", "50000", "0.02", "BNB"),  # no price: unconverted
        fill("ETHBTC", "0.05", "0.5", "ETH"),  # base of a non-USDT pair: unconverted
        fill("BTCUSDT", "50000", "0", "BNB"),  # zero fee: ignored
    ]
    m = compute_metrics(make_result([100, 100], fills=fills))
    assert m.fees_paid == pytest.approx(70.1)
    assert m.fees_unconverted == {"BNB": 0.02, "ETH": 0.5}
    assert m.n_fills == 6


def test_denials_by_reason_most_frequent_first() -> None:
    reasons = ["MAX_NOTIONAL", "KILL_SWITCH", "MAX_NOTIONAL", "CIRCUIT_OPEN", "KILL_SWITCH"]
    reasons += ["MAX_NOTIONAL"]
    denials = [DenialRecord(T0, "BTCUSDT", "BUY", r, "msg") for r in reasons]
    m = compute_metrics(make_result([100, 100], denials=denials))
    assert m.n_denials == 6
    assert list(m.denials_by_reason.items()) == [
        ("MAX_NOTIONAL", 3),
        ("KILL_SWITCH", 2),
        ("CIRCUIT_OPEN", 1),
    ]


# --------------------------------------------------------------------------- edge cases


def test_no_trades() -> None:
    m = compute_metrics(make_result([100, 101, 100.5]))
    assert m.n_trades == 0
    for name in ("win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss"):
        assert getattr(m, name) is None
    assert (m.best_trade, m.worst_trade) == (None, None)
    assert m.exposure == 0.0
    assert_json_safe(m)


def test_constant_equity() -> None:
    m = compute_metrics(make_result([100.0] * 50))
    assert m.total_return == 0.0
    assert m.annual_volatility == 0.0
    assert m.sharpe is None and m.sortino is None and m.calmar is None
    assert m.max_drawdown == 0.0
    assert m.max_drawdown_duration_bars == 0 and m.max_drawdown_duration_s == 0.0
    assert m.max_drawdown_start_ns is None and m.max_drawdown_recovered is None
    assert_json_safe(m)


def test_single_bar() -> None:
    m = compute_metrics(make_result([100.0]))
    assert m.bars == 1
    assert m.periods_per_year is None
    assert m.annual_return is None  # zero time span
    assert m.annual_volatility is None and m.sharpe is None and m.sortino is None
    assert m.max_drawdown == 0.0
    assert m.exposure == 0.0
    assert_json_safe(m)


def test_no_bars() -> None:
    m = compute_metrics(make_result([]))
    assert m.bars == 0 and m.exposure is None and m.sharpe is None
    assert_json_safe(m)


def test_non_finite_points_and_non_positive_equity_do_not_crash() -> None:
    m = compute_metrics(make_result([100, np.nan, 110, 0, -5, 20], final=20))
    assert m.bars == 5  # the NaN point is dropped
    d = assert_json_safe(m)
    assert d["max_drawdown"] is not None and m.max_drawdown > 1  # below zero: > 100 %


def test_zero_initial_equity_gives_no_return() -> None:
    m = compute_metrics(make_result([0, 0], initial=0, final=0))
    assert m.total_return is None and m.annual_return is None
    assert_json_safe(m)


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match="periods_per_year"):
        compute_metrics(make_result([1, 2]), periods_per_year=0)
    bad = make_result([1, 2])
    bad.equity_ts_ns = bad.equity_ts_ns[:1]
    with pytest.raises(ValueError, match="one length"):
        compute_metrics(bad)


def test_infer_periods_uses_median_spacing() -> None:
    ts = np.array([0, MIN, 2 * MIN, 10 * MIN, 11 * MIN], dtype=np.int64)  # one gap
    assert infer_periods(ts) == 525_600
    assert infer_periods(np.array([T0, T0], dtype=np.int64)) is None
