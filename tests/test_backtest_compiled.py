"""The compiled per-bar loop (``bot4.backtest._fastloop``) against the pure-Python loop
in ``Backtest._run`` it translates.

Each run is made twice in one process, once per loop (the pure one by switching the
engine's ``_fastloop`` off), and everything observable must be identical: fills,
trades, denials, the final equity, every equity point bit for bit, and what the
strategy saw on every bar (the ``Bar``'s fields and their types, the clock, its
indicators).  The first test fails if the compiled loop is not built or not used (a
broken build must not pass as a slow one)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4 import _compiled
from bot4.backtest import engine
from bot4.backtest.engine import Backtest
from bot4.backtest.result import BacktestResult
from bot4.core.numbers import SCALE
from bot4.data.bars import BarSeries, load_bars, synthetic_bars
from bot4.examples.no_stop import SmaCrossNoStop
from bot4.examples.sma_cross import SmaCross
from bot4.strategy.base import Bar, Strategy
from bot4.strategy.indicators import SMA, crossed_above, crossed_below
from tests.conftest import SHARED_DATA
from tests.test_backtest_venue_reach import RestingMix

BTC = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"
ETH = SHARED_DATA / "ohlcv_1m" / "binance_spot_ETH_USDT-1m_2025-05-20_2025-08-18.feather"
PARAMS = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"}

pytestmark = pytest.mark.skipif(
    _compiled.FORCE_PURE, reason="BOT4_PURE_SIM is set: the pure-Python fallback is forced"
)


class _CountingLoop:
    """Wraps the compiled ``BarLoop``: counts the runs and bars it was given."""

    instances: list[_CountingLoop] = []  # noqa: RUF012 -- test bookkeeping

    def __init__(self, *args: Any) -> None:
        assert engine._fastloop is not None
        self.inner = _REAL.BarLoop(*args)
        self.runs = 0
        self.bars = 0
        _CountingLoop.instances.append(self)

    @property
    def last_equity(self) -> float:
        return float(self.inner.last_equity)

    @last_equity.setter
    def last_equity(self, value: float) -> None:
        self.inner.last_equity = value

    def run(self, runs: list[tuple[int, int, int]], chunks: list[Any], done: int) -> int:
        self.runs += len(runs)
        self.bars += sum(i1 - i0 for _, i0, i1 in runs)
        return int(self.inner.run(runs, chunks, done))


_REAL = engine._fastloop


@contextmanager
def _pure() -> Iterator[None]:
    """The engine's pure-Python loop for the duration."""
    saved = engine._fastloop
    engine._fastloop = None
    try:
        yield
    finally:
        engine._fastloop = saved


def _both(run: Callable[[], BacktestResult]) -> tuple[BacktestResult, BacktestResult]:
    """(compiled, pure) results of the same run; fails if the compiled loop did not run
    every bar."""
    _CountingLoop.instances.clear()
    saved = engine._fastloop

    class Spy:
        BarLoop = _CountingLoop
        Chunk = _REAL.Chunk

    engine._fastloop = Spy  # type: ignore[assignment]
    try:
        fast = run()
    finally:
        engine._fastloop = saved
    assert len(_CountingLoop.instances) == 1
    assert _CountingLoop.instances[0].bars == fast.bars > 0
    with _pure():
        pure = run()
    return fast, pure


def _same(fast: BacktestResult, pure: BacktestResult) -> None:
    assert fast.bars == pure.bars
    assert fast.fills == pure.fills
    assert fast.trades == pure.trades
    assert fast.denials == pure.denials
    assert fast.entries == pure.entries
    assert fast.final_equity == pure.final_equity
    assert fast.equity.dtype == pure.equity.dtype == np.float64
    assert np.array_equal(fast.equity.view(np.int64), pure.equity.view(np.int64))  # bits
    assert np.array_equal(fast.equity_ts_ns, pure.equity_ts_ns)
    assert (fast.start_ns, fast.end_ns) == (pure.start_ns, pure.end_ns)


def _bits(x: object) -> object:
    """A float by its bits (NaN == NaN), anything else with its type."""
    if type(x) is float:
        return ("float", np.float64(x).view(np.int64).item())
    return (type(x).__name__, x)


class Seen:
    """Mixin: records what the strategy sees on each bar (fields and types of the bar,
    the clock, its indicators), to compare between the loops."""

    def _record(self, bar: Bar) -> None:
        log: list[tuple[object, ...]] = self.__dict__.setdefault("seen", [])
        inds = [ind for _, ind in self._indicators]  # type: ignore[attr-defined]
        log.append(
            (
                bar.symbol,
                *(_bits(getattr(bar, f)) for f in ("ts_ns", "open", "high", "low", "close")),
                _bits(bar.volume),
                self.now_ns,  # type: ignore[attr-defined]
                *((_bits(i.value), _bits(i.previous), i.count) for i in inds),
            )
        )


class SeenSmaCross(SmaCross, Seen):
    def on_bar(self, bar: Bar) -> None:
        self._record(bar)
        super().on_bar(bar)


class SeenResting(RestingMix, Seen):
    def on_start(self) -> None:
        super().on_start()
        self.sma(7)  # a batch indicator the strategy does not read

    def on_bar(self, bar: Bar) -> None:
        self._record(bar)
        super().on_bar(bar)


class TimersAndIndicators(Strategy, Seen):
    """Non-batch indicators (EMA, RSI), an SMA fed by ``update`` (a subclass whose
    ``value`` is its own slot, so the compiled loop must use ``setattr``), timers that
    trade, and limit entries with brackets."""

    every: int = 7

    def on_start(self) -> None:
        self.ema_ = self.ema(12)
        self.rsi_ = self.rsi(14)
        self.own = self._register(OwnSlotSMA(5), None)
        self.set_timer("minutes", 60 * 10**9 * self.every)
        self.set_timer("hour", 3600 * 10**9)
        self.fired: list[tuple[str, int]] = []

    def on_bar(self, bar: Bar) -> None:
        self._record(bar)

    def on_timer(self, name: str) -> None:
        self.fired.append((name, self.now_ns))
        if name == "hour":
            if sum(n == "hour" for n, _ in self.fired) <= 3:  # added while timers fire
                self.set_timer(f"late{len(self.fired)}", 17 * 60 * 10**9)
            return
        if not self.rsi_.ready or math.isnan(self.ema_.value):
            return
        for order in self.open_orders():
            if not order.reduce_only:
                self.cancel(order)
        if self.is_flat():
            if self.rsi_.value < 50:
                self.buy(
                    Decimal("0.2"),
                    limit=self.ema_.value * 0.999,
                    stop_loss_pct=Decimal("0.3"),
                    take_profit_pct=Decimal("0.4"),
                )
        elif self.rsi_.value > 60:
            self.close_position()


class OwnSlotSMA(SMA):
    """An SMA whose ``value`` is a slot of its own (not ``Indicator``'s)."""

    __slots__ = ("value",)


class TwoSymbols(Strategy, Seen):
    """Trades both symbols off one SMA cross each (exits by stop or reverse cross)."""

    def on_start(self) -> None:
        self.syms = sorted(self.ctx.instruments)
        self.mas = {s: (self.sma(5, s), self.sma(20, s)) for s in self.syms}

    def on_bar(self, bar: Bar) -> None:
        self._record(bar)
        fast, slow = self.mas[bar.symbol]
        if crossed_above(fast, slow) and self.is_flat(bar.symbol):
            qty = Decimal("0.01") if bar.symbol.startswith("BTC") else Decimal("0.2")
            self.buy(qty, symbol=bar.symbol, stop_loss_pct=Decimal("0.4"))
        elif crossed_below(fast, slow) and not self.is_flat(bar.symbol):
            self.close_position(bar.symbol)


def _seen(bt: Backtest) -> list[tuple[object, ...]]:
    return bt.strategy.__dict__.get("seen", [])


def _compare(
    strategy: type[Strategy],
    data: BarSeries | list[BarSeries],
    params: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[BacktestResult, Backtest, Backtest]:
    made: list[Backtest] = []

    def run() -> BacktestResult:
        bt = Backtest(strategy, data, params=params, **kwargs)
        made.append(bt)
        return bt.run()

    fast, pure = _both(run)
    _same(fast, pure)
    assert _seen(made[0]) == _seen(made[1])
    return fast, made[0], made[1]


# -- the module is built and used ------------------------------------------------------
def test_the_compiled_loop_is_built_and_in_use() -> None:
    fast = engine._fastloop
    assert fast is not None, "bot4.backtest._fastloop is not built: run pip install -e ."
    assert fast.__file__ is not None and not fast.__file__.endswith((".py", ".pyx"))
    # Every slot it writes by offset is still a slot (else it silently takes setattr).
    assert all(fast.slots_in_use().values()), fast.slots_in_use()
    result, *_ = _compare(SmaCross, synthetic_bars(5_000, seed=1), PARAMS)
    assert result.entries > 10


# -- same results ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2])
def test_sma_cross_on_synthetic_bars(seed: int) -> None:
    result, fast_bt, _ = _compare(SeenSmaCross, synthetic_bars(80_000, seed=seed), PARAMS)
    assert result.entries > 500 and len(_seen(fast_bt)) == 80_000


def test_denials_are_the_same() -> None:
    result, *_ = _compare(SmaCrossNoStop, synthetic_bars(20_000, seed=3))
    assert result.entries == 0 and len(result.denials) > 100


def test_limit_stop_ioc_and_bracket_orders() -> None:
    result, *_ = _compare(SeenResting, synthetic_bars(40_000, seed=4), cash=10_000_000)
    kinds = {f.liquidity for f in result.fills}
    assert len(result.fills) > 5_000 and kinds == {"MAKER", "TAKER"}


def test_timers_and_non_batch_indicators() -> None:
    result, fast_bt, pure_bt = _compare(
        TimersAndIndicators, synthetic_bars(30_000, seed=5), cash=1_000_000
    )
    fired = fast_bt.strategy.fired  # type: ignore[attr-defined]
    assert fired == pure_bt.strategy.fired  # type: ignore[attr-defined]
    assert len(fired) > 6_000 and any(name.startswith("late") for name, _ in fired)
    assert len(result.fills) > 100


def test_off_grid_prices_round_as_python_rounds() -> None:
    """Prices with many decimals (raw prices are rounded ``x * 1e9``), resting orders."""
    base = synthetic_bars(20_000, seed=6)
    rng = np.random.default_rng(6)
    noise = rng.uniform(0.0, 0.01, len(base))  # sub-tick fractions
    series = BarSeries(
        "BTCUSDT",
        base.ts_ns,
        base.open + noise,
        base.high + 0.01,
        base.low - 0.01,
        base.close + noise[::-1] * 0.5,
        base.volume,
    )
    series = BarSeries(
        "BTCUSDT",
        series.ts_ns,
        series.open,
        np.maximum(series.high, np.maximum(series.open, series.close)),
        np.minimum(series.low, np.minimum(series.open, series.close)),
        series.close,
        series.volume,
    )
    result, *_ = _compare(SeenResting, series, cash=10_000_000)
    assert len(result.fills) > 200


@pytest.mark.skipif(not BTC.exists(), reason="real BTC/USDT minutes not in ../shared/data")
def test_real_btc_minutes() -> None:
    result, *_ = _compare(SeenSmaCross, load_bars(BTC, "BTCUSDT"), PARAMS)
    assert result.entries == 2565


@pytest.mark.skipif(
    not (BTC.exists() and ETH.exists()), reason="real BTC/ETH minutes not in ../shared/data"
)
def test_two_real_symbols_share_one_account() -> None:
    btc = load_bars(BTC, "BTCUSDT").slice(0, 15_000)
    eth = load_bars(ETH, "ETHUSDT").slice(0, 15_000)
    result, fast_bt, _ = _compare(TwoSymbols, [btc, eth], cash="1000000")
    assert {f.symbol for f in result.fills} == {"BTCUSDT", "ETHUSDT"}
    assert result.bars == 30_000 and len(_seen(fast_bt)) == 30_000


def test_two_symbols_with_runs_of_several_bars() -> None:
    """ETH starts later and has a gap: runs of one symbol's bars between the other's."""
    btc = synthetic_bars(12_000, "BTCUSDT", seed=8)
    eth = synthetic_bars(9_000, "ETHUSDT", seed=9, start_price=2_500.0)
    keep = np.ones(len(eth), dtype=bool)
    keep[3_000:3_500] = False  # a gap in ETH: BTC runs alone
    eth = BarSeries(
        "ETHUSDT",
        eth.ts_ns[keep] + 1_000 * 60 * 10**9,
        eth.open[keep],
        eth.high[keep],
        eth.low[keep],
        eth.close[keep],
        eth.volume[keep],
    )
    result, *_ = _compare(TwoSymbols, [btc, eth], cash="1000000")
    assert {f.symbol for f in result.fills} == {"BTCUSDT", "ETHUSDT"}


def test_progress_is_reported_the_same() -> None:
    series = synthetic_bars(150_000, seed=10)
    calls: dict[str, list[tuple[int, int]]] = {"fast": [], "pure": []}
    key = ["fast"]

    def run() -> BacktestResult:
        out = calls[key[0]]
        result = Backtest(SmaCross, series, params=PARAMS).run(
            progress=lambda d, n: out.append((d, n))
        )
        key[0] = "pure"
        return result

    fast, pure = _both(run)
    _same(fast, pure)
    assert calls["fast"] == calls["pure"] == [(65_536, 150_000), (131_072, 150_000), (150_000,) * 2]


def test_a_bar_subclass_and_other_dtypes_take_the_generic_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``Bar`` of another class is written with ``setattr``; columns that are not
    float64 run the pure loop (their ``tolist`` gives other objects), the same as before."""

    class OtherBar(Bar):
        __slots__ = ()

    monkeypatch.setattr(engine, "Bar", OtherBar)
    _compare(SeenSmaCross, synthetic_bars(10_000, seed=11), PARAMS)
    base = synthetic_bars(10_000, seed=12)
    ints = BarSeries(
        "BTCUSDT", base.ts_ns, base.open, base.high, base.low, base.close,
        np.ones(len(base), dtype=np.int64),
    )  # fmt: skip
    assert not engine._typed_columns(ints)
    with _pure():
        pure = Backtest(SeenSmaCross, ints, params=PARAMS).run()
    assert engine._fastloop is not None
    mixed = Backtest(SeenSmaCross, ints, params=PARAMS).run()
    _same(mixed, pure)


class Fails(Strategy):
    """Raises on its 1,000th bar."""

    def on_start(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar) -> None:
        self.n += 1
        if self.n == 1_000:
            raise ZeroDivisionError(f"bar {bar.ts_ns}")


def test_an_error_in_on_bar_leaves_the_loop_as_it_is() -> None:
    series = synthetic_bars(5_000, seed=13)
    with pytest.raises(ZeroDivisionError) as fast:
        Backtest(Fails, series).run()
    with _pure(), pytest.raises(ZeroDivisionError) as pure:
        Backtest(Fails, series).run()
    assert str(fast.value) == str(pure.value) == f"bar {int(series.ts_ns[999])}"


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    fast=st.integers(2, 12),
    gap=st.integers(1, 25),
    stop=st.sampled_from(["0.1", "0.3", "1"]),
    n=st.integers(50, 4_000),
)
def test_random_runs_are_identical(seed: int, fast: int, gap: int, stop: str, n: int) -> None:
    params = {"fast": fast, "slow": fast + gap, "qty": "0.5", "stop_pct": stop}
    _compare(SeenSmaCross, synthetic_bars(n, seed=seed, sigma=0.002), params)


# -- the C helpers ------------------------------------------------------------------------
_doubles = st.one_of(
    st.floats(min_value=1e-12, max_value=1e12, allow_nan=False),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(10**13), 10**13).map(lambda k: (k + 0.5) / SCALE),  # near a half
    st.integers(1, 10**12).map(lambda k: k / 100),  # prices on a cent grid
)


@settings(max_examples=2_000, deadline=None)
@given(x=_doubles)
def test_rounding_is_pythons(x: float) -> None:
    assert _REAL is not None
    try:
        expected: object = round(x * SCALE)
    except (OverflowError, ValueError) as exc:
        expected = type(exc)
    try:
        got: object = _REAL.round_scaled(x)
    except (OverflowError, ValueError) as exc:
        got = type(exc)
    assert got == expected and type(got) is type(expected)


def test_rounding_of_halves_nan_and_infinity() -> None:
    assert _REAL is not None
    for x in (0.5e-9, 1.5e-9, 2.5e-9, -0.5e-9, -2.5e-9, 1e10, 2.0**63 / 1e9, 1e290):
        assert _REAL.round_scaled(x) == round(x * SCALE)
    with pytest.raises(ValueError):
        _REAL.round_scaled(math.nan)
    with pytest.raises(OverflowError):
        _REAL.round_scaled(math.inf)


_BIG = 1 << 80  # the bar venue's "no level above"


@settings(max_examples=1_000, deadline=None)
@given(
    h=st.integers(-(2**65), 2**65),
    lo=st.integers(-(2**65), 2**65),
    fall=st.one_of(st.integers(-(2**65), 2**65), st.just(-1), st.just(_BIG)),
    rise=st.one_of(st.integers(-(2**65), 2**65), st.just(_BIG), st.just(-_BIG)),
    force=st.booleans(),
    shift=st.integers(-2, 2),
)
def test_reach_test_is_the_python_expression(
    h: int, lo: int, fall: int, rise: int, force: bool, shift: int
) -> None:
    assert _REAL is not None
    hf, lof = float(h), float(lo)  # the loop compares integral doubles
    fall = int(lof) + shift if shift and abs(lof) < 2**70 else fall
    w = (fall, rise, force)
    expected = bool(w[2] or int(lof) <= w[0] or int(hf) >= w[1])
    assert _REAL.reaches(w, hf, lof) is expected
