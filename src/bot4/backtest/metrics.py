"""Performance metrics of a finished backtest, computed from its `BacktestResult` alone.

Why a separate, pure module: metrics are analytics, so they work on float64 numpy arrays
(vectorised, fast over a million bars) and never touch the order path; the same function
scores a backtest, a paper session or a saved result, and a report only formats its output.

Conventions (each metric's docstring below is its definition):

* ``e_0 … e_{n-1}`` is the equity curve (``result.equity``), one point per bar at the
  bar's close, stamped ``t_0 … t_{n-1}`` (``result.equity_ts_ns``). Points whose equity is
  not finite are dropped first.
* The per-bar simple returns are ``r_i = e_i / e_{i-1} - 1`` for ``i = 1 … n-1``; a return
  whose previous equity is ``<= 0`` is undefined and left out.
* ``P`` is the number of periods (bars) per year. Unless given, it is inferred from the
  median spacing of the timestamps, over a 365-day year because crypto trades every day:
  ``P = 365 * 86400 s / median(t_i - t_{i-1})``, so 1-minute bars give 525,600.
* An irregular curve -- a backtest on trades or order-book data has a point per event,
  milliseconds or hours apart -- is first sampled on a one-minute grid (the last equity
  at or before each minute), and ``r`` and ``P`` (525,600) come from that grid: returns
  between events are not periods, and scaling them by ``sqrt(events per year)`` gives
  meaningless ratios (a Sharpe of -2,262 on a few hours of trades was one).  A curve is
  irregular when fewer than half of its steps equal the median step.  Drawdowns and
  exposure still use every point.
* The risk-free rate is 0.
* Ratios that are undefined (a zero or missing denominator, too few points) are ``None``,
  never NaN or infinity, so that ``Metrics.to_dict()`` is valid JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray

from bot4.backtest.result import BacktestResult, FillRecord

__all__ = ["NS_PER_SECOND", "SECONDS_PER_YEAR", "Metrics", "compute_metrics", "infer_periods"]

NS_PER_SECOND = 1_000_000_000
SECONDS_PER_YEAR = 365 * 86_400  # crypto trades 24/7: 1-minute bars -> 525,600 per year
GRID_NS = 60 * NS_PER_SECOND  # an irregular (event-stamped) curve is sampled per minute


@dataclass(frozen=True, slots=True)
class Metrics:
    """The scores of one backtest. Definitions (``e``, ``r``, ``P`` as in the module doc):

    Time and equity
        start_ns, end_ns: ``result.start_ns``, ``result.end_ns``.
        bars: number of (finite) points on the equity curve, ``n``.
        periods_per_year: ``P`` (given, or inferred; None with fewer than two timestamps).
        initial_equity, final_equity: ``result.initial_equity``, ``result.final_equity``.

    Returns and risk
        total_return: ``final_equity / initial_equity - 1`` from the exact Decimal figures
            (None if ``initial_equity <= 0``).
        annual_return: the CAGR, ``(1 + total_return) ** (1 / years) - 1`` with
            ``years = (end_ns - start_ns) / 365 days`` (the curve's span ``t_{n-1} - t_0``
            when ``end_ns <= start_ns``); ``-1`` when the equity was wiped out; None for a
            zero span or when the figure overflows a float.
        annual_volatility: ``std(r, ddof=1) * sqrt(P)``; None with fewer than two returns.
        sharpe: ``mean(r) / std(r, ddof=1) * sqrt(P)``; None when the std is 0 or undefined.
        sortino: ``mean(r) / DD * sqrt(P)`` with the downside deviation
            ``DD = sqrt(mean(min(r, 0) ** 2))`` over all returns (target 0); None when
            ``DD == 0`` (no losing bar) or with fewer than two returns.
        calmar: ``annual_return / max_drawdown``; None when either is None or 0 drawdown.

    Drawdown (high-water mark ``H_i = max(e_0 … e_i)``)
        max_drawdown: ``max_i (1 - e_i / H_i)``, a positive fraction (0.25 = 25 %).
        max_drawdown_peak_ns, max_drawdown_trough_ns: when the deepest drawdown's high-water
            mark was set and when it bottomed (None without a drawdown).
        max_drawdown_duration_s, max_drawdown_duration_bars: the longest time under water.
            A bar is under water when ``e_i < H_i``; an episode runs from the last bar at the
            high-water mark before it to the first bar back at or above that mark, or to the
            last bar if it never recovered. Measured as ``t_end - t_start`` and as
            ``end - start`` in bars (0 and 0 without a drawdown).
        max_drawdown_start_ns, max_drawdown_end_ns: ``t_start``, ``t_end`` of that episode.
        max_drawdown_recovered: whether that episode ended back at the high-water mark.

    Trades (round trips; ``p_k`` is the net pnl of trade ``k`` in the quote currency)
        n_trades; n_wins: ``p_k > 0``; n_losses: ``p_k < 0`` (a zero pnl is neither).
        win_rate: ``n_wins / n_trades``.
        gross_profit: ``sum(p_k > 0)``; gross_loss: ``-sum(p_k < 0)`` (positive).
        profit_factor: ``gross_profit / gross_loss``; None when there is no loss.
        expectancy: ``mean(p_k)``, the average pnl per trade.
        avg_win: ``mean(p_k | p_k > 0)``; avg_loss: ``mean(p_k | p_k < 0)`` (negative).
        best_trade, worst_trade: ``max(p_k)``, ``min(p_k)``.
        All of these are None without trades (or without wins / losses for the averages).

    Exposure
        exposure: the fraction of bars with an open position. A bar is exposed when some
            trade is open at its close (``entry_ts_ns <= t_i < exit_ts_ns``) or, for a round
            trip that opened and closed between two closes, at the first close at or after
            its entry. Only round trips count, so a position still open at the end (not yet
            a trade) is not seen. None without bars.

    Costs and activity
        fees_paid: the sum of the fills' fees in the quote currency: a fee in the quote
            asset counts as is; a fee in the base asset of the fill's symbol counts at
            ``fee * fill price``.
        fees_unconverted: fees in any other asset (BNB discounts, ...), summed per asset.
        n_fills: number of fills.
        n_denials: number of orders the risk engine denied.
        denials_by_reason: counts per denial reason, most frequent first.
    """

    start_ns: int
    end_ns: int
    bars: int
    periods_per_year: float | None
    initial_equity: float
    final_equity: float
    total_return: float | None
    annual_return: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_peak_ns: int | None
    max_drawdown_trough_ns: int | None
    max_drawdown_duration_s: float
    max_drawdown_duration_bars: int
    max_drawdown_start_ns: int | None
    max_drawdown_end_ns: int | None
    max_drawdown_recovered: bool | None
    n_trades: int
    n_wins: int
    n_losses: int
    win_rate: float | None
    gross_profit: float
    gross_loss: float
    profit_factor: float | None
    expectancy: float | None
    avg_win: float | None
    avg_loss: float | None
    best_trade: float | None
    worst_trade: float | None
    exposure: float | None
    fees_paid: float
    n_fills: int
    n_denials: int
    fees_unconverted: dict[str, float] = field(default_factory=dict)
    denials_by_reason: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict: every non-finite float (which the computation never produces
        on purpose) becomes None, so `json.dumps(..., allow_nan=False)` always works."""
        return {k: _json_safe(v) for k, v in asdict(self).items()}


def _json_safe(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _opt(x: float) -> float | None:
    """A float, or None when it is not finite (an undefined ratio)."""
    return float(x) if math.isfinite(x) else None


def infer_periods(ts_ns: NDArray[np.int64]) -> float | None:
    """Bars per year from the median bar spacing (robust to gaps such as missing bars);
    None with fewer than two distinct timestamps."""
    if len(ts_ns) < 2:
        return None
    dt = np.diff(np.asarray(ts_ns, dtype=np.int64))
    dt = dt[dt > 0]
    if dt.size == 0:
        return None
    return SECONDS_PER_YEAR * NS_PER_SECOND / float(np.median(dt))


def _regular(ts_ns: NDArray[np.int64]) -> bool:
    """Bars (at least half of the steps equal the median step; missing bars allowed)."""
    dt = np.diff(ts_ns)
    if dt.size == 0:
        return True
    return bool(np.mean(dt == np.median(dt)) >= 0.5)


def _sample_grid(
    ts_ns: NDArray[np.int64], eq: NDArray[np.float64], step_ns: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The curve's first point, then its last value at or before each grid boundary
    (multiples of ``step_ns``) up to its last point."""
    first = (int(ts_ns[0]) // step_ns + 1) * step_ns
    grid = np.arange(first, int(ts_ns[-1]) + 1, step_ns, dtype=np.int64)
    idx = np.searchsorted(ts_ns, grid, side="right") - 1
    return np.concatenate([ts_ns[:1], grid]), np.concatenate([eq[:1], eq[idx]])


def compute_metrics(result: BacktestResult, periods_per_year: float | None = None) -> Metrics:
    """Score a backtest; see `Metrics` for every definition.

    `periods_per_year` overrides the bar frequency inferred from ``result.equity_ts_ns``
    (e.g. 252 for daily bars on a stock-market calendar). Never raises on degenerate input
    (no bars, one bar, flat equity, no trades): undefined figures come back as None.
    """
    if periods_per_year is not None and not (periods_per_year > 0):
        raise ValueError(f"periods_per_year must be > 0, got {periods_per_year}")
    ts = np.asarray(result.equity_ts_ns, dtype=np.int64)
    eq = np.asarray(result.equity, dtype=np.float64)
    if ts.shape != eq.shape or eq.ndim != 1:
        raise ValueError(
            f"equity_ts_ns and equity must be 1-D and of one length, got {ts.shape} and {eq.shape}"
        )
    finite = np.isfinite(eq)
    if not finite.all():
        ts, eq = ts[finite], eq[finite]
    ts_r, eq_r = ts, eq
    if periods_per_year is None and not _regular(ts):
        ts_r, eq_r = _sample_grid(ts, eq, GRID_NS)
    ppy = periods_per_year if periods_per_year is not None else infer_periods(ts_r)

    returns = _bar_returns(eq_r)
    vol, sharpe, sortino = _risk_ratios(returns, ppy)
    total_return, annual_return = _growth(result, ts)
    dd = _drawdown(ts, eq)
    calmar = annual_return / dd.max_dd if annual_return is not None and dd.max_dd > 0 else None
    trades = _trade_stats(result)
    fees, unconverted = _fees(result.fills, result.quote)
    by_reason = Counter(d.reason for d in result.denials)

    return Metrics(
        start_ns=int(result.start_ns),
        end_ns=int(result.end_ns),
        bars=int(eq.size),
        periods_per_year=ppy,
        initial_equity=float(result.initial_equity),
        final_equity=float(result.final_equity),
        total_return=total_return,
        annual_return=annual_return,
        annual_volatility=vol,
        sharpe=sharpe,
        sortino=sortino,
        calmar=_opt(calmar) if calmar is not None else None,
        max_drawdown=dd.max_dd,
        max_drawdown_peak_ns=dd.peak_ns,
        max_drawdown_trough_ns=dd.trough_ns,
        max_drawdown_duration_s=dd.duration_s,
        max_drawdown_duration_bars=dd.duration_bars,
        max_drawdown_start_ns=dd.start_ns,
        max_drawdown_end_ns=dd.end_ns,
        max_drawdown_recovered=dd.recovered,
        exposure=_exposure(result, ts),
        fees_paid=fees,
        fees_unconverted=unconverted,
        n_fills=len(result.fills),
        n_denials=len(result.denials),
        denials_by_reason=dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        **trades,
    )


def _bar_returns(eq: NDArray[np.float64]) -> NDArray[np.float64]:
    """Simple per-bar returns; those after a non-positive equity are undefined and dropped."""
    if eq.size < 2:
        return np.empty(0, dtype=np.float64)
    prev, cur = eq[:-1], eq[1:]
    ok = prev > 0
    return cur[ok] / prev[ok] - 1.0


def _risk_ratios(
    r: NDArray[np.float64], ppy: float | None
) -> tuple[float | None, float | None, float | None]:
    """(annual volatility, Sharpe, Sortino); all None without a bar frequency or with fewer
    than two returns, since a sample std needs two points."""
    if ppy is None or r.size < 2:
        return None, None, None
    scale = math.sqrt(ppy)
    mean = float(r.mean())
    std = float(r.std(ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    vol = _opt(std * scale)
    # A flat curve gives a std of exactly 0. A std that is float noise next to the mean
    # (steady growth, no risk) would give a meaningless huge ratio: treat it as 0 too.
    sharpe = _opt(mean / std * scale) if std > 1e-12 * max(abs(mean), 1e-12) else None
    sortino = _opt(mean / downside * scale) if downside > 0 else None
    return vol, sharpe, sortino


def _growth(result: BacktestResult, ts: NDArray[np.int64]) -> tuple[float | None, float | None]:
    """(total return, CAGR). The total return uses the exact Decimal equity figures, so it
    agrees with what the runner prints; the CAGR compounds it over the backtest's span."""
    initial, final = result.initial_equity, result.final_equity
    if initial <= 0:
        return None, None
    total = float(final / initial - Decimal(1))
    span_ns = int(result.end_ns) - int(result.start_ns)
    if span_ns <= 0 and ts.size >= 2:
        span_ns = int(ts[-1] - ts[0])
    if span_ns <= 0:
        return total, None
    years = span_ns / NS_PER_SECOND / SECONDS_PER_YEAR
    if total <= -1.0:
        return total, -1.0
    try:
        cagr = math.expm1(math.log1p(total) / years)
    except OverflowError:  # e.g. +50 % over one minute compounds beyond a float
        return total, None
    return total, _opt(cagr)


@dataclass(frozen=True, slots=True)
class _Drawdown:
    max_dd: float = 0.0
    peak_ns: int | None = None
    trough_ns: int | None = None
    duration_s: float = 0.0
    duration_bars: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    recovered: bool | None = None


def _drawdown(ts: NDArray[np.int64], eq: NDArray[np.float64]) -> _Drawdown:
    """Depth of the deepest drawdown and length of the longest underwater episode; these
    are different episodes in general (a shallow, slow bleed can outlast a crash)."""
    n = eq.size
    if n < 2:
        return _Drawdown()
    hwm = np.maximum.accumulate(eq)
    under = eq < hwm
    if not under.any():
        return _Drawdown()
    idx = np.arange(n)
    # Index of the last bar at the high-water mark, for every bar.
    last_peak = np.maximum.accumulate(np.where(under, 0, idx))
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(hwm > 0, 1.0 - eq / hwm, 0.0)
    trough = int(np.argmax(depth))
    max_dd = float(depth[trough])

    # Underwater runs: [run_start, run_last]; the episode spans from the peak bar before
    # the run to the recovery bar after it (or the last bar when it never recovered).
    u = under.astype(np.int8)
    edges = np.diff(np.concatenate(([0], u, [0])))
    run_start = np.flatnonzero(edges == 1)
    run_last = np.flatnonzero(edges == -1) - 1
    ep_start = last_peak[run_start]
    ep_end = np.minimum(run_last + 1, n - 1)
    seconds = (ts[ep_end] - ts[ep_start]).astype(np.float64) / NS_PER_SECOND
    bars = ep_end - ep_start
    # Longest by time; ties (and equal-time runs on irregular bars) go to more bars, then
    # to the earliest episode, which np.lexsort keeps stable.
    longest = int(np.lexsort((-bars, -seconds))[0])
    return _Drawdown(
        max_dd=max_dd,
        peak_ns=int(ts[last_peak[trough]]),
        trough_ns=int(ts[trough]),
        duration_s=float(seconds[longest]),
        duration_bars=int(bars[longest]),
        start_ns=int(ts[ep_start[longest]]),
        end_ns=int(ts[ep_end[longest]]),
        recovered=bool(run_last[longest] + 1 < n),
    )


class _TradeStats(TypedDict):
    n_trades: int
    n_wins: int
    n_losses: int
    win_rate: float | None
    gross_profit: float
    gross_loss: float
    profit_factor: float | None
    expectancy: float | None
    avg_win: float | None
    avg_loss: float | None
    best_trade: float | None
    worst_trade: float | None


def _trade_stats(result: BacktestResult) -> _TradeStats:
    """Win rate, profit factor and friends over round-trip trades (keys = Metrics fields)."""
    pnl = np.fromiter((float(t.pnl) for t in result.trades), np.float64, len(result.trades))
    n = int(pnl.size)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_profit = float(wins.sum())
    gross_loss = abs(float(losses.sum()))  # abs: no "-0.0" without losses
    return _TradeStats(
        n_trades=n,
        n_wins=int(wins.size),
        n_losses=int(losses.size),
        win_rate=wins.size / n if n else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=_opt(gross_profit / gross_loss) if gross_loss > 0 else None,
        expectancy=float(pnl.mean()) if n else None,
        avg_win=float(wins.mean()) if wins.size else None,
        avg_loss=float(losses.mean()) if losses.size else None,
        best_trade=float(pnl.max()) if n else None,
        worst_trade=float(pnl.min()) if n else None,
    )


def _exposure(result: BacktestResult, ts: NDArray[np.int64]) -> float | None:
    """Fraction of bars exposed (see `Metrics`), with a difference array over the bars so
    that overlapping trades (several symbols) count a bar once."""
    n = ts.size
    if n == 0:
        return None
    if not result.trades:
        return 0.0
    entry = np.fromiter((t.entry_ts_ns for t in result.trades), np.int64, len(result.trades))
    exit_ = np.fromiter((t.exit_ts_ns for t in result.trades), np.int64, len(result.trades))
    exit_ = np.maximum(exit_, entry)
    lo = np.searchsorted(ts, entry, side="left")  # first close at/after the entry
    hi = np.searchsorted(ts, exit_, side="left")  # first close at/after the exit
    hi = np.where(hi == lo, np.minimum(lo + 1, n), hi)  # round trip between two closes
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, lo, 1)
    np.add.at(marks, hi, -1)
    exposed = np.cumsum(marks[:n]) > 0
    return float(exposed.mean())


def _split_symbol(symbol: str, quote: str) -> tuple[str | None, str | None]:
    """(base, quote) of a symbol such as ``BTCUSDT``, ``BTC/USDT`` or ``BTC/USDT:USDT``."""
    if "/" in symbol:
        base, _, rest = symbol.partition("/")
        return base, rest.partition(":")[0]
    if quote and symbol.endswith(quote) and len(symbol) > len(quote):
        return symbol[: -len(quote)], quote
    return None, None


def _fees(fills: list[FillRecord], quote: str) -> tuple[float, dict[str, float]]:
    """Fees in the quote currency (exact Decimal sum, then a float), plus the fees that
    cannot be valued without another price series, per asset."""
    total = Decimal(0)
    other: dict[str, Decimal] = {}
    bases: dict[str, str | None] = {}
    for f in fills:
        if not f.fee:
            continue
        if f.fee_asset == quote:
            total += f.fee
            continue
        if f.symbol not in bases:
            base, sym_quote = _split_symbol(f.symbol, quote)
            bases[f.symbol] = base if sym_quote == quote else None
        if f.fee_asset == bases[f.symbol]:
            total += f.fee * f.price
        else:
            other[f.fee_asset] = other.get(f.fee_asset, Decimal(0)) + f.fee
    return float(total), {k: float(v) for k, v in sorted(other.items())}
