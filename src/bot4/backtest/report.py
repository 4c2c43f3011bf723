"""A backtest's report: one standalone HTML file with interactive plotly charts and tables.

Why one self-contained file: it is what gets mailed, archived next to the result and
opened on a laptop without network access, so plotly.js is embedded inline and nothing
is fetched. Why decimation: a million-bar equity curve would make a 50 MB file and a
browser that freezes, so the *plotted lines* keep at most ``MAX_LINE_POINTS`` points,
chosen by min/max per bucket so that every peak and trough (hence every drawdown) stays
visible. Trades, their markers, metrics and denials are never thinned.

Everything user-provided (strategy name, params, symbols, denial reasons and messages)
is HTML-escaped; text that goes to plotly is escaped too, since plotly renders a subset
of HTML in titles and hover labels. The output is deterministic (fixed element ids, no
timestamp of generation), so the same result gives a byte-identical file.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from string import Template

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from bot4.backtest.metrics import NS_PER_SECOND, Metrics, compute_metrics
from bot4.backtest.result import BacktestResult, DenialRecord, TradeRecord

__all__ = [
    "MAX_DENIALS_LISTED",
    "MAX_LINE_POINTS",
    "decimate_minmax",
    "render_html_report",
    "write_html_report",
]

MAX_LINE_POINTS = 5_000
MAX_DENIALS_LISTED = 100
_NS_PER_MS = 1_000_000
_PLOT_CONFIG = {"responsive": True, "displaylogo": False}
_GREEN, _RED, _BLUE = "#1a9850", "#d73027", "#2c7fb8"


def write_html_report(result: BacktestResult, metrics: Metrics | None, path: str | Path) -> Path:
    """Write the report of `result` to `path` (parents created) and return the path.

    `metrics` may be None, in which case they are computed with `compute_metrics`.
    """
    m = metrics if metrics is not None else compute_metrics(result)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html_report(result, m), encoding="utf-8")
    return out


def render_html_report(result: BacktestResult, metrics: Metrics) -> str:
    """The report as a string (what `write_html_report` writes)."""
    title = f"Backtest report: {result.strategy}"
    body = _TEMPLATE.substitute(
        title=html.escape(title),
        plotlyjs=get_plotlyjs(),
        css=_CSS,
        header=_header(result),
        alerts=_alerts(result, metrics),
        cards=_cards(metrics),
        equity=_fig_html(_equity_figure(result, metrics), "equity-chart"),
        prices=_fig_html(_price_figure(result), "price-chart"),
        pnl=_fig_html(_pnl_figure(result), "pnl-chart"),
        summary=_summary_table(metrics),
        denials=_denials_section(result, metrics),
        trades=_trades_table(result.trades),
    )
    return body


# --------------------------------------------------------------------------- decimation


def decimate_minmax(
    x: NDArray[np.generic], y: NDArray[np.float64], max_points: int = MAX_LINE_POINTS
) -> tuple[NDArray[np.generic], NDArray[np.float64]]:
    """Thin a line to at most `max_points` points, keeping in every bucket of consecutive
    points both its minimum and its maximum (in time order), plus the first and last
    points. Unlike taking every k-th point, no spike or drawdown disappears: the plotted
    envelope is exactly the true one. Non-finite values are never chosen as extremes
    unless a whole bucket is non-finite."""
    n = int(y.size)
    if n <= max_points:
        return x, y
    if max_points < 4:
        raise ValueError("max_points must be >= 4")
    buckets = (max_points - 2) // 2
    size = math.ceil(n / buckets)
    full = (n // size) * size
    finite = np.isfinite(y)
    lo_vals = np.where(finite, y, np.inf)
    hi_vals = np.where(finite, y, -np.inf)
    starts = np.arange(0, full, size)
    picks = [
        np.array([0, n - 1]),
        starts + lo_vals[:full].reshape(-1, size).argmin(axis=1),
        starts + hi_vals[:full].reshape(-1, size).argmax(axis=1),
    ]
    if full < n:  # the ragged last bucket
        picks.append(np.array([full + lo_vals[full:].argmin(), full + hi_vals[full:].argmax()]))
    idx = np.unique(np.concatenate(picks))
    return x[idx], y[idx]


# --------------------------------------------------------------------------- formatting


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _utc(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "–"
    dt = datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def _utc_many(ts_ns: NDArray[np.int64]) -> list[str]:
    """Vectorised UTC formatting (20,000 trades would take a while one by one)."""
    s = np.datetime_as_string(ts_ns.astype("datetime64[ns]").astype("datetime64[s]"), unit="s")
    return [v.replace("T", " ") for v in s.tolist()]


def _pct(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v * 100:,.{digits}f} %"


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _duration(seconds: float) -> str:
    s = round(seconds)
    days, rem = divmod(s, 86_400)
    hours, rem = divmod(rem, 3_600)
    minutes, secs = divmod(rem, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _ms(ts_ns: NDArray[np.int64]) -> NDArray[np.float64]:
    """Epoch milliseconds as float64: what plotly's date axis reads as UTC, and a dtype
    plotly can ship as compact base64 (int64 it cannot)."""
    return np.asarray(ts_ns, dtype=np.int64).astype(np.float64) / _NS_PER_MS


# --------------------------------------------------------------------------- charts


def _fig_html(fig: go.Figure, div_id: str) -> str:
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            config=_PLOT_CONFIG,
            div_id=div_id,
        )
    )


def _style(fig: go.Figure, height: int) -> None:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 80, "b": 40},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        hovermode="closest",
    )
    fig.update_xaxes(type="date", hoverformat="%Y-%m-%d %H:%M:%S")


def _equity_figure(result: BacktestResult, metrics: Metrics) -> go.Figure:
    """Equity (top) and drawdown in % below the high-water mark (bottom), one x axis."""
    ts = np.asarray(result.equity_ts_ns, dtype=np.int64)
    eq = np.asarray(result.equity, dtype=np.float64)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04
    )
    if eq.size:
        x = _ms(ts)
        with np.errstate(divide="ignore", invalid="ignore"):
            hwm = np.fmax.accumulate(eq)
            dd = np.where(hwm > 0, (eq / hwm - 1.0) * 100.0, 0.0)
        ex, ey = decimate_minmax(x, eq)
        dx, dy = decimate_minmax(x, dd)
        fig.add_trace(
            go.Scatter(
                x=ex, y=ey, mode="lines", name="equity", line={"color": _BLUE, "width": 1.5}
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=dx,
                y=dy,
                mode="lines",
                name="drawdown %",
                fill="tozeroy",
                line={"color": _RED, "width": 1},
            ),
            row=2,
            col=1,
        )
    quote = _esc(result.quote)
    fig.update_yaxes(title_text=f"equity ({quote})", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    _style(fig, 560)
    fig.update_layout(
        title={"text": f"Equity and drawdown (max {_pct(metrics.max_drawdown)})", "x": 0}
    )
    return fig


def _symbols(result: BacktestResult) -> list[str]:
    seen = dict.fromkeys([*result.symbols, *result.prices, *(t.symbol for t in result.trades)])
    return list(seen)


def _price_figure(result: BacktestResult) -> go.Figure:
    """Close price per symbol (one row each) with every trade's entry and exit marked."""
    symbols = _symbols(result) or ["(no symbol)"]
    fig = make_subplots(
        rows=len(symbols),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.06, 0.3 / len(symbols)),
        subplot_titles=[_esc(s) for s in symbols],
    )
    by_symbol: dict[str, list[tuple[int, TradeRecord]]] = {s: [] for s in symbols}
    for k, t in enumerate(result.trades, start=1):
        by_symbol[t.symbol].append((k, t))
    for row, sym in enumerate(symbols, start=1):
        esc_sym = _esc(sym)
        show = row == 1  # one legend entry per kind, not per symbol
        if sym in result.prices:
            pts, close = result.prices[sym]
            px, py = decimate_minmax(_ms(pts), np.asarray(close, dtype=np.float64))
            fig.add_trace(
                go.Scatter(
                    x=px,
                    y=py,
                    mode="lines",
                    name="close",
                    legendgroup="close",
                    showlegend=show,
                    line={"color": "#555", "width": 1},
                    hovertemplate=f"%{{y:,.8g}}<extra>{esc_sym}</extra>",
                ),
                row=row,
                col=1,
            )
        trades = by_symbol.get(sym, [])
        if not trades:
            continue
        n = len(trades)
        no = np.fromiter((k for k, _ in trades), np.float64, n)
        qty = np.fromiter((float(t.qty) for _, t in trades), np.float64, n)
        pnl = np.fromiter((float(t.pnl) for _, t in trades), np.float64, n)
        entry_ts = np.fromiter((t.entry_ts_ns for _, t in trades), np.int64, n)
        exit_ts = np.fromiter((t.exit_ts_ns for _, t in trades), np.int64, n)
        entry_px = np.fromiter((float(t.entry_price) for _, t in trades), np.float64, n)
        exit_px = np.fromiter((float(t.exit_price) for _, t in trades), np.float64, n)
        custom = np.column_stack([no, qty, pnl])
        for kind, x, y, symbol, color in (
            ("entry", entry_ts, entry_px, "triangle-up", _GREEN),
            ("exit", exit_ts, exit_px, "triangle-down", _RED),
        ):
            fig.add_trace(
                go.Scatter(
                    x=_ms(x),
                    y=y,
                    mode="markers",
                    name=kind,
                    legendgroup=kind,
                    showlegend=show,
                    marker={"symbol": symbol, "color": color, "size": 9},
                    customdata=custom,
                    hovertemplate=(
                        f"{kind} of trade #%{{customdata[0]}}<br>%{{x|%Y-%m-%d %H:%M:%S}} UTC"
                        "<br>price %{y:,.8g}<br>qty %{customdata[1]:.8g}"
                        f"<br>trade pnl %{{customdata[2]:,.2f}}<extra>{esc_sym}</extra>"
                    ),
                ),
                row=row,
                col=1,
            )
    fig.update_xaxes(title_text="time (UTC)", row=len(symbols), col=1)
    _style(fig, 160 + 280 * len(symbols))
    fig.update_layout(title={"text": "Price with entries and exits", "x": 0})
    return fig


def _pnl_figure(result: BacktestResult) -> go.Figure:
    """Histogram of the trades' net pnl, with a line at zero to split wins from losses."""
    pnl = np.fromiter((float(t.pnl) for t in result.trades), np.float64, len(result.trades))
    fig = go.Figure()
    if pnl.size:
        bins = int(min(100, max(10, math.sqrt(pnl.size))))
        fig.add_trace(go.Histogram(x=pnl, nbinsx=bins, marker={"color": _BLUE}, name="trades"))
        fig.add_vline(x=0, line={"color": "#333", "dash": "dot"})
    else:
        fig.add_annotation(
            text="no trades", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    fig.update_layout(
        template="plotly_white",
        height=380,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        title={"text": f"Trade P&amp;L distribution ({_esc(result.quote)})", "x": 0},
        xaxis_title="net pnl per trade",
        yaxis_title="trades",
        bargap=0.02,
    )
    return fig


# --------------------------------------------------------------------------- tables


def _header(result: BacktestResult) -> str:
    params = "".join(
        f"<tr><th>{_esc(k)}</th><td>{_esc(_param_text(v))}</td></tr>"
        for k, v in result.params.items()
    )
    params_html = f"<table class='kv'>{params}</table>" if params else "<p>(no params)</p>"
    return (
        f"<h1>{_esc(result.strategy)}</h1>"
        f"<p class='meta'>{_esc(', '.join(result.symbols))} · quote {_esc(result.quote)}"
        f" · {_utc(result.start_ns)} → {_utc(result.end_ns)} UTC · {result.bars:,} bars"
        f" · ran in {result.seconds:,.2f} s</p>"
        f"<details><summary>Parameters</summary>{params_html}</details>"
    )


def _param_text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _alerts(result: BacktestResult, m: Metrics) -> str:
    """A banner when risk denied orders: above all when it denied every entry, since an
    empty equity curve otherwise looks like a strategy that never signalled."""
    if not m.n_denials:
        return ""
    top = ", ".join(f"{_esc(r)} ({c:,})" for r, c in list(m.denials_by_reason.items())[:3])
    if m.n_trades == 0 and m.n_fills == 0:
        return (
            f"<div class='alert bad'><b>No trades: every order was denied.</b> "
            f"{m.n_denials:,} denials; top reasons: {top}. See <a href='#denials'>Denials</a>."
            "</div>"
        )
    return (
        f"<div class='alert warn'>{m.n_denials:,} orders were denied by risk; top reasons: "
        f"{top}. See <a href='#denials'>Denials</a>.</div>"
    )


def _cards(m: Metrics) -> str:
    cards = [
        ("Total return", _pct(m.total_return)),
        ("CAGR", _pct(m.annual_return)),
        ("Sharpe", _num(m.sharpe)),
        ("Max drawdown", _pct(m.max_drawdown)),
        ("Trades", f"{m.n_trades:,}"),
        ("Win rate", _pct(m.win_rate, 1)),
        ("Denials", f"{m.n_denials:,}"),
    ]
    return "".join(
        f"<div class='card'><div class='k'>{k}</div><div class='v'>{v}</div></div>"
        for k, v in cards
    )


def _summary_table(m: Metrics) -> str:
    rows: list[tuple[str, str]] = [
        ("Start (UTC)", _utc(m.start_ns)),
        ("End (UTC)", _utc(m.end_ns)),
        ("Bars", f"{m.bars:,}"),
        ("Periods per year", _num(m.periods_per_year, 0)),
        ("Initial equity", _num(m.initial_equity)),
        ("Final equity", _num(m.final_equity)),
        ("Total return", _pct(m.total_return)),
        ("Annual return (CAGR)", _pct(m.annual_return)),
        ("Annual volatility", _pct(m.annual_volatility)),
        ("Sharpe ratio", _num(m.sharpe, 3)),
        ("Sortino ratio", _num(m.sortino, 3)),
        ("Calmar ratio", _num(m.calmar, 3)),
        ("Max drawdown", _pct(m.max_drawdown)),
        (
            "Max drawdown peak → trough (UTC)",
            f"{_utc(m.max_drawdown_peak_ns)} → {_utc(m.max_drawdown_trough_ns)}",
        ),
        (
            "Longest time under water",
            f"{_duration(m.max_drawdown_duration_s)} ({m.max_drawdown_duration_bars:,} bars)",
        ),
        (
            "Under water from → to (UTC)",
            f"{_utc(m.max_drawdown_start_ns)} → "
            f"{_utc(m.max_drawdown_end_ns)}"
            + ("" if m.max_drawdown_recovered is not False else " (not recovered)"),
        ),
        ("Trades", f"{m.n_trades:,}"),
        ("Wins / losses", f"{m.n_wins:,} / {m.n_losses:,}"),
        ("Win rate", _pct(m.win_rate)),
        ("Profit factor", _num(m.profit_factor, 3)),
        ("Expectancy (per trade)", _num(m.expectancy, 4)),
        ("Average win", _num(m.avg_win, 4)),
        ("Average loss", _num(m.avg_loss, 4)),
        ("Best trade", _num(m.best_trade, 4)),
        ("Worst trade", _num(m.worst_trade, 4)),
        ("Gross profit / loss", f"{_num(m.gross_profit)} / {_num(m.gross_loss)}"),
        ("Exposure", _pct(m.exposure)),
        ("Fees paid (quote)", _num(m.fees_paid, 4)),
        ("Fills", f"{m.n_fills:,}"),
        ("Denials", f"{m.n_denials:,}"),
    ]
    for asset, amount in m.fees_unconverted.items():
        rows.append((f"Fees paid in {_esc(asset)}", _num(amount, 8)))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='kv' id='metrics'>{body}</table>"


def _denials_section(result: BacktestResult, m: Metrics) -> str:
    if not m.n_denials:
        return "<p>No orders were denied.</p>"
    counts = "".join(
        f"<tr><td>{_esc(r)}</td><td class='n'>{c:,}</td>"
        f"<td class='n'>{c / m.n_denials:.1%}</td></tr>"
        for r, c in m.denials_by_reason.items()
    )
    first: Sequence[DenialRecord] = result.denials[:MAX_DENIALS_LISTED]
    listed = "".join(
        f"<tr><td>{_utc(d.ts_ns)}</td><td>{_esc(d.symbol)}</td><td>{_esc(d.side)}</td>"
        f"<td>{_esc(d.reason)}</td><td>{_esc(d.message)}</td></tr>"
        for d in first
    )
    more = (
        f"<p>Showing the first {MAX_DENIALS_LISTED} of {m.n_denials:,} denials.</p>"
        if m.n_denials > MAX_DENIALS_LISTED
        else ""
    )
    return (
        "<table class='grid' id='denial-reasons'><thead><tr><th>reason</th><th>count</th>"
        f"<th>share</th></tr></thead><tbody>{counts}</tbody></table>"
        f"<h3>First denials</h3>{more}<div class='scroll'><table class='grid' id='denial-list'>"
        "<thead><tr><th>time (UTC)</th><th>symbol</th><th>side</th><th>reason</th>"
        f"<th>message</th></tr></thead><tbody>{listed}</tbody></table></div>"
    )


def _trades_table(trades: list[TradeRecord]) -> str:
    """Every trade, one row each. Kept lean (no per-cell attributes) because 20,000 rows
    are a large share of the file."""
    if not trades:
        return "<p>No trades.</p>"
    n = len(trades)
    entries = _utc_many(np.fromiter((t.entry_ts_ns for t in trades), np.int64, n))
    exits = _utc_many(np.fromiter((t.exit_ts_ns for t in trades), np.int64, n))
    rows = []
    for i, t in enumerate(trades):
        cls = "w" if t.pnl > 0 else "l" if t.pnl < 0 else "z"
        rows.append(
            f"<tr class={cls}><td>{i + 1}<td>{_esc(t.symbol)}<td>{_esc(t.side)}"
            f"<td>{entries[i]}<td>{exits[i]}<td>{t.qty:f}<td>{t.entry_price:f}"
            f"<td>{t.exit_price:f}<td>{t.pnl:f}<td>{t.fees:f}<td>{t.return_pct * 100:.3f}</tr>"
        )
    head = (
        "<thead><tr><th>#</th><th>symbol</th><th>side</th><th>entry (UTC)</th>"
        "<th>exit (UTC)</th><th>qty</th><th>entry price</th><th>exit price</th>"
        "<th>pnl</th><th>fees</th><th>return %</th></tr></thead>"
    )
    return (
        f"<div class='scroll tall'><table class='grid' id='trades'>{head}<tbody>"
        f"{''.join(rows)}</tbody></table></div>"
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#222;background:#f6f7f9}
main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{margin:8px 0 4px;font-size:24px}h2{margin:28px 0 8px;font-size:18px}
.meta{color:#555;margin:0 0 8px}
section{background:#fff;border:1px solid #e3e5e8;border-radius:8px;padding:12px 16px;
 margin:14px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #e3e5e8;border-radius:8px;padding:8px 14px;
 min-width:120px}
.card .k{color:#666;font-size:12px}.card .v{font-size:20px;font-weight:600}
.alert{border-radius:8px;padding:10px 14px;margin:12px 0}
.alert.bad{background:#fde2e1;border:1px solid #d73027}
.alert.warn{background:#fff4d6;border:1px solid #e0a800}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.kv th{text-align:left;font-weight:500;color:#555;padding:2px 18px 2px 0}
table.kv td{padding:2px 0}
table.grid{width:100%;font-size:12.5px}
table.grid th,table.grid td{border-bottom:1px solid #eceef1;padding:3px 8px;text-align:right;
 white-space:nowrap}
table.grid th{position:sticky;top:0;background:#f0f2f5}
table.grid :is(th,td):nth-child(-n+3){text-align:left}
#denial-list :is(th,td){text-align:left}#denial-list td:last-child{white-space:normal}
table#denial-reasons{width:auto}
tr.w td:nth-child(9){color:#1a7f37}tr.l td:nth-child(9){color:#c62828}
.scroll{max-height:420px;overflow:auto}.scroll.tall{max-height:640px}
"""

_TEMPLATE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style>
<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script>$plotlyjs</script>
</head>
<body>
<main>
<header>$header</header>
$alerts
<div class="cards">$cards</div>
<section id="equity">$equity</section>
<section id="prices">$prices</section>
<section id="pnl">$pnl</section>
<section><h2>Metrics</h2>$summary</section>
<section id="denials"><h2>Denials</h2>$denials</section>
<section><h2>Trades</h2>$trades</section>
<footer class="meta">Generated by bot4. Charts thin lines to at most """
    + str(MAX_LINE_POINTS)
    + """ points (keeping every bucket's min and max); trades, metrics and denials are
complete.</footer>
</main>
</body>
</html>
"""
)
