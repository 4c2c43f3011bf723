"""The compiled market state (``bot4.risk._fastmarket``) against its pure-Python
reference (``PyMarketState``).

Both are driven with the same random streams -- prices of every kind (exact ints below
and past 2**53, zero, negatives, other number types), time steps inside a grid slot,
across one boundary, over long gaps and backwards, one to four symbols, small and large
windows -- and everything observable must agree exactly: return values (floats bit for
bit), exceptions (type and message), the dicts other code reads, the sampled history,
returns and covariance arrays byte for byte.  The real BTC and ETH minute bars are fed
through both as a backtest feeds them.  The first test fails if the compiled class is
not in use at all (a broken build must not pass as a slow one)."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4 import _compiled
from bot4.backtest.engine import Backtest
from bot4.data.bars import load_bars, synthetic_bars
from bot4.examples.sma_cross import SmaCross
from bot4.oms.manager import OrderManager
from bot4.risk import engine as risk_engine
from bot4.risk.engine import RiskEngine
from bot4.risk.market import MarketState, PyMarketState
from bot4.risk.profile import Limits, RiskProfile
from tests.conftest import SHARED_DATA, T0

pytestmark = pytest.mark.skipif(
    _compiled.FORCE_PURE, reason="BOT4_PURE_SIM is set: the pure-Python fallback is forced"
)

MINUTE = 60 * 10**9
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
BTC_FILE = SHARED_DATA / "ohlcv_1m" / "binance_spot_BTC_USDT-1m_2025-05-20_2025-08-18.feather"
ETH_FILE = SHARED_DATA / "ohlcv_1m" / "binance_spot_ETH_USDT-1m_2025-05-20_2025-08-18.feather"


def test_the_compiled_market_state_is_built_and_in_use(om: OrderManager) -> None:
    fast = _compiled.compiled("_fastmarket", "bot4.risk")
    assert fast is not None, "bot4.risk._fastmarket is not built: run pip install -e ."
    assert fast.__file__ is not None and not fast.__file__.endswith(".py")
    assert MarketState is not PyMarketState and issubclass(MarketState, fast.MarketCore)
    assert risk_engine.MarketState is MarketState
    assert type(RiskEngine(om, RiskProfile.default()).market) is MarketState


# -- exact comparison -------------------------------------------------------------------
def _same(a: object, b: object) -> bool:
    """Equal, floats bit for bit (so -0.0 is not 0.0 and a NaN equals a NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


def _outcome(call: Any) -> object:
    try:
        return call()
    except Exception as exc:  # compared by type and message
        return ("raised", type(exc).__name__, str(exc))


def _state(m: Any) -> object:
    return (
        list(m.last_prices.items()),
        list(m.last_update_ns.items()),
        m._slot,
        m._taken,
        sorted((s, list(h)) for s, h in m._history.items()),
    )


def _assert_same_state(fast: Any, pure: Any) -> None:
    got, want = _state(fast), _state(pure)
    assert got == want
    # the sampled objects themselves: same types (an int stays an int, a Decimal a Decimal)
    for s, h in pure._history.items():
        assert [type(p) for p in fast._history[s]] == [type(p) for p in h]


exact_prices = st.integers(1, 2**53 - 1)
edge_prices = st.sampled_from(
    [1, 2, 2**53 - 2, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 + 7, 10**30]
)
odd_prices = st.one_of(
    st.sampled_from([0, -1, -(10**11), True, 1.5, 100_000.25, float("inf")]),
    st.builds(Decimal, st.integers(1, 10**6)),
    st.builds(float, st.integers(1, 10**6)),
)


def _prices(odd: bool) -> st.SearchStrategy[object]:
    # realistic raw prices walk in small steps (many equal prices: zero returns)
    walk = st.integers(99_990, 100_010).map(lambda p: p * 10**9)
    parts: list[st.SearchStrategy[object]] = [walk, walk, exact_prices, edge_prices]
    if odd:
        parts.append(odd_prices)
    return st.one_of(*parts)


# time steps: mostly one grid boundary (a bar), also inside the slot, a gap of many
# slots, backwards
steps = st.one_of(
    st.just(MINUTE),
    st.just(MINUTE),
    st.integers(MINUTE, 2 * MINUTE),
    st.integers(0, MINUTE - 1),
    st.integers(3 * MINUTE, 500 * MINUTE),
    st.integers(-3 * MINUTE, -1),
)


def _ops(odd: bool) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    symbol = st.integers(0, 3)
    update = st.tuples(st.just("update"), symbol, _prices(odd), steps)
    variance = st.tuples(st.just("variance"), symbol)
    samples = st.tuples(st.just("samples"), symbol)
    returns = st.tuples(st.just("returns"), st.lists(symbol, max_size=4), st.integers(0, 80))
    cov = st.tuples(st.just("covariance"))
    return st.lists(
        st.one_of(update, update, update, update, variance, samples, returns, cov),
        min_size=20,
        max_size=300,
    )


windows = st.one_of(st.integers(2, 8), st.sampled_from([60, 200]))


def _run(ops: list[tuple[Any, ...]], window: int, interval: int, nsym: int) -> None:
    fast, pure = MarketState(interval, window), PyMarketState(interval, window)
    ts = T0
    for op in ops:
        kind = op[0]
        if kind == "update":
            _, k, price, dt = op
            ts += dt
            sym = SYMBOLS[k % nsym]
            got = _outcome(lambda m=fast, s=sym, p=price, t=ts: m.update(s, p, t))
            want = _outcome(lambda m=pure, s=sym, p=price, t=ts: m.update(s, p, t))
        elif kind == "variance" or kind == "samples":
            sym = SYMBOLS[op[1] % nsym]
            got = _outcome(lambda m=fast, s=sym, f=kind: getattr(m, f)(s))
            want = _outcome(lambda m=pure, s=sym, f=kind: getattr(m, f)(s))
        elif kind == "returns":
            syms = [SYMBOLS[k % nsym] for k in op[1]]
            got = _outcome(lambda m=fast, s=syms, n=op[2]: m.returns(s, n))
            want = _outcome(lambda m=pure, s=syms, n=op[2]: m.returns(s, n))
        else:
            got = _outcome(fast.covariance)
            want = _outcome(pure.covariance)
        assert _same(got, want), (op, got, want)
        _assert_same_state(fast, pure)


@settings(max_examples=300, deadline=None)
@given(ops=_ops(odd=False), window=windows, nsym=st.integers(1, 4))
def test_random_streams_agree_exactly(ops: list[tuple[Any, ...]], window: int, nsym: int) -> None:
    _run(ops, window, MINUTE, nsym)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's log of a negative price
@settings(max_examples=200, deadline=None)
@given(ops=_ops(odd=True), window=windows, nsym=st.integers(1, 3))
def test_odd_prices_give_the_same_values_and_errors(
    ops: list[tuple[Any, ...]], window: int, nsym: int
) -> None:
    """Zero, negative, float, Decimal, bool and huge prices: the pure class's result or
    its exception, and the same state after it (a fold that fails part way leaves the
    same partial figures)."""
    _run(ops, window, MINUTE, nsym)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=100, deadline=None)
@given(
    ops=_ops(odd=False),
    window=windows,
    interval=st.one_of(
        st.sampled_from([1, 7, 2**62, 2**64, 1.5, 90_000_000_000.0, Decimal(60 * 10**9)]),
        st.integers(1, 10 * MINUTE),
    ),
)
def test_odd_grids_and_time_stamps_agree(
    ops: list[tuple[Any, ...]], window: int, interval: int
) -> None:
    """Grids past a C integer or not integers at all take the Python path; so do time
    stamps that are not exact ints (below, a float and an int past 2**63)."""
    ops = [*ops, ("update", 0, 10**11, 0)]
    _run(ops, window, interval, 2)
    fast, pure = MarketState(interval, window), PyMarketState(interval, window)
    for ts in (0, 5, 2**63 + 5, 1.5e19, -(2**70), 2**70, 3, Decimal(10**20)):
        got = _outcome(lambda m=fast, t=ts: m.update("BTCUSDT", 10**11 + 1, t))
        want = _outcome(lambda m=pure, t=ts: m.update("BTCUSDT", 10**11 + 1, t))
        assert _same(got, want), (ts, got, want)
        _assert_same_state(fast, pure)


def test_bad_arguments_raise_the_same_errors() -> None:
    for interval, window in [(0, 5), (-1, 5), (MINUTE, 1), (MINUTE, 0), (0, 0)]:
        got = _outcome(lambda i=interval, w=window: MarketState(i, w))
        want = _outcome(lambda i=interval, w=window: PyMarketState(i, w))
        assert got == want and isinstance(got, tuple) and got[1] == "ValueError"
    fast, pure = MarketState(MINUTE, 5), PyMarketState(MINUTE, 5)
    for m in (fast, pure):
        m.update("BTCUSDT", 10**11, 0)
    for call in ("variance", "samples"):
        got = _outcome(lambda c=call: getattr(fast, c)(["unhashable"]))
        want = _outcome(lambda c=call: getattr(pure, c)(["unhashable"]))
        assert got == want and isinstance(got, tuple) and got[1] == "TypeError"
    assert _outcome(lambda: fast.returns(["NOPE"], 3)) == _outcome(
        lambda: pure.returns(["NOPE"], 3)
    )


def test_rounding_sensitive_sums_agree() -> None:
    """Returns whose rolling sums cancel to nothing and back: any change in the order
    of the float operations (or a fused multiply-add) shows in the last bits."""
    fast, pure = MarketState(MINUTE, 3), PyMarketState(MINUTE, 3)
    prices = [10**9, 10**9 + 1, 10**9, 3 * 10**15, 10**9, 2**53 - 1, 1, 2**52 + 1] * 40
    for i, p in enumerate(prices):
        for m in (fast, pure):
            m.update("BTCUSDT", p, i * MINUTE)
        assert _same(fast.variance("BTCUSDT"), pure.variance("BTCUSDT"))


# -- real data -------------------------------------------------------------------------
def _closes(path: Any, symbol: str) -> tuple[list[int], list[int]]:
    series = load_bars(path, symbol)
    closes = np.rint(series.close * 10**9).astype(np.int64).tolist()
    stamps = (series.ts_ns + series.interval_ns).tolist()
    return closes, stamps


@pytest.mark.skipif(not BTC_FILE.exists(), reason="shared BTC data not present")
@pytest.mark.parametrize(("interval", "window", "every"), [(MINUTE, 60, 1), (5 * MINUTE, 1440, 37)])
def test_real_btc_bars_give_the_same_variance_series(
    interval: int, window: int, every: int
) -> None:
    closes, stamps = _closes(BTC_FILE, "BTCUSDT")
    assert len(closes) > 100_000
    fast, pure = MarketState(interval, window), PyMarketState(interval, window)
    got: list[float | None] = []
    want: list[float | None] = []
    for i, (price, ts) in enumerate(zip(closes, stamps, strict=True)):
        assert fast.update("BTCUSDT", price, ts) == pure.update("BTCUSDT", price, ts)
        if i % every == 0:
            got.append(fast.variance("BTCUSDT"))
            want.append(pure.variance("BTCUSDT"))
    assert sum(v is not None for v in want) > len(want) // 2
    assert len(got) == len(want)
    assert all(_same(a, b) for a, b in zip(got, want, strict=True))
    _assert_same_state(fast, pure)


@pytest.mark.skipif(
    not (BTC_FILE.exists() and ETH_FILE.exists()), reason="shared BTC/ETH data not present"
)
def test_real_btc_and_eth_bars_give_the_same_covariance() -> None:
    btc, btc_ts = _closes(BTC_FILE, "BTCUSDT")
    eth, eth_ts = _closes(ETH_FILE, "ETHUSDT")
    n = min(len(btc), len(eth), 30_000)
    fast, pure = MarketState(MINUTE, 60), PyMarketState(MINUTE, 60)
    checked = 0
    for i in range(n):
        for m in (fast, pure):
            m.update("BTCUSDT", btc[i], btc_ts[i])
            m.update("ETHUSDT", eth[i], eth_ts[i])
        if i % 97 == 0:
            got, want = fast.covariance(), pure.covariance()
            assert _same(got, want)
            checked += len(want[0]) == 2
            for s in ("BTCUSDT", "ETHUSDT"):
                assert _same(fast.variance(s), pure.variance(s))
    assert checked > 100
    _assert_same_state(fast, pure)


def test_a_backtest_is_the_same_with_either_market_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path (strategy, risk engine, order manager, venue) with a VaR limit that
    denies some entries and passes others on the variance's exact value."""
    series = synthetic_bars(20_000, "BTCUSDT", seed=7)
    profile = RiskProfile(limits=Limits(max_var_pct_equity=Decimal("0.0000053")))
    params = {"fast": 10, "slow": 30, "qty": 1, "stop_pct": "0.5"}

    def run() -> Any:
        return Backtest(
            SmaCross, series, params=params, cash=10_000_000, risk_profile=profile
        ).run()

    fast = run()
    monkeypatch.setattr(risk_engine, "MarketState", PyMarketState)
    pure = run()
    assert fast.entries > 10 and len(fast.denials) > 10
    assert fast.entries == pure.entries and fast.denials == pure.denials
    assert fast.fills == pure.fills and fast.trades == pure.trades
    assert _same(fast.equity, pure.equity) and fast.final_equity == pure.final_equity
    assert math.isfinite(float(fast.final_equity))
