"""The HTML report: standalone (plotly.js inline, nothing fetched), escaped, complete in its
tables, bounded in size at 20,000 trades over a million bars, and rendering in a real
headless Chromium without JavaScript errors."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from bot4.backtest.metrics import compute_metrics
from bot4.backtest.report import (
    MAX_DENIALS_LISTED,
    MAX_LINE_POINTS,
    decimate_minmax,
    render_html_report,
    write_html_report,
)
from bot4.backtest.result import BacktestResult, DenialRecord, FillRecord, TradeRecord

T0 = 1_747_699_200 * 10**9
MIN = 60 * 10**9
EVIL_NAME = "<script>alert(1)</script>"
EVIL_REASON = "<img src=x onerror=alert(2)>"
MAX_REPORT_BYTES = 15 * 1024 * 1024


def synthetic_result(
    bars: int,
    n_trades: int,
    n_denials: int = 0,
    *,
    name: str = "sma-cross",
    seed: int = 7,
) -> BacktestResult:
    """A random-walk backtest: BTCUSDT closes, an equity curve, `n_trades` long round trips
    at distinct bars, one fill per trade, denials cycling over three reasons."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(bars, dtype=np.int64) * MIN
    price = 100_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, bars)))
    equity = 10_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, bars)))
    slots = np.sort(rng.choice(bars, size=2 * n_trades, replace=False)).reshape(-1, 2)
    pnls = np.round(rng.normal(1, 20, n_trades), 2)
    trades, fills = [], []
    for k, ((a, b), pnl) in enumerate(zip(slots, pnls, strict=True)):
        entry, exit_ = Decimal(f"{price[a]:.2f}"), Decimal(f"{price[b]:.2f}")
        trades.append(
            TradeRecord(
                "BTCUSDT", "LONG", int(ts[a]), int(ts[b]), Decimal("0.01"), entry, exit_,
                Decimal(f"{pnl:.2f}"), Decimal("0.1"), float(pnl) / float(entry * Decimal("0.01")),
            )
        )  # fmt: skip
        fills.append(
            FillRecord(
                int(ts[a]), "BTCUSDT", "BUY", Decimal("0.01"), entry, Decimal("0.05"), "USDT",
                f"c{k}", "TAKER",
            )
        )  # fmt: skip
    reasons = ["NOTIONAL_EXCEEDS_MAX_PER_ORDER", "KILL_SWITCH_ACTIVE", EVIL_REASON]
    denials = [
        DenialRecord(
            int(ts[i % bars]), "BTCUSDT", "BUY", reasons[i % 3], f"notional <b>{i}</b> > max"
        )
        for i in range(n_denials)
    ]
    return BacktestResult(
        strategy=name,
        params={"fast": 10, "slow": 30, "label": "<i>x</i>", "grid": [1, 2]},
        symbols=["BTCUSDT"],
        quote="USDT",
        start_ns=int(ts[0]),
        end_ns=int(ts[-1]),
        bars=bars,
        initial_equity=Decimal("10000"),
        final_equity=Decimal(f"{equity[-1]:.2f}"),
        equity_ts_ns=ts,
        equity=equity,
        fills=fills,
        trades=trades,
        denials=denials,
        prices={"BTCUSDT": (ts, price)},
        seconds=1.5,
        entries=n_trades,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, Path]:
    result = synthetic_result(10_000, 500, 250, name=EVIL_NAME)
    path = write_html_report(
        result, compute_metrics(result), tmp_path_factory.mktemp("r") / "r.html"
    )
    return result, path


def outside_scripts(text: str) -> str:
    return re.sub(r"<script\b[^>]*>.*?</script>", "", text, flags=re.S | re.I)


# --------------------------------------------------------------------------- content


def test_report_is_standalone(report: tuple[BacktestResult, Path]) -> None:
    _, path = report
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "plotly.js v" in text and "Plotly.newPlot" in text  # the library, inline
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", text, re.I)
    assert not re.search(r"<link\b", text, re.I)
    # Outside the inlined library (whose code holds URL strings it only uses for features
    # this report does not have, such as maps), no URL at all: nothing is fetched.
    rest = outside_scripts(text)
    assert "http://" not in rest and "https://" not in rest


def test_report_escapes_user_strings(report: tuple[BacktestResult, Path]) -> None:
    _, path = report
    text = path.read_text(encoding="utf-8")
    assert EVIL_NAME not in text
    assert html.escape(EVIL_NAME) in text
    assert EVIL_REASON not in text and html.escape(EVIL_REASON) in text
    assert "<b>0</b>" not in text and "notional &lt;b&gt;0&lt;/b&gt; &gt; max" in text
    assert "<i>x</i>" not in text and "&lt;i&gt;x&lt;/i&gt;" in text
    # The only script tags are the config, the library and one per chart.
    assert text.count("<script") == 5


def test_report_has_metrics_trades_and_denials(report: tuple[BacktestResult, Path]) -> None:
    result, path = report
    text = path.read_text(encoding="utf-8")
    m = compute_metrics(result)
    metrics_table = text[text.index("id='metrics'") :]
    metrics_table = metrics_table[: metrics_table.index("</table>")]
    for label in ("Sharpe ratio", "Sortino ratio", "Max drawdown", "Profit factor", "Exposure"):
        assert label in metrics_table
    assert f"{m.sharpe:,.3f}" in metrics_table
    assert f"{m.max_drawdown * 100:,.2f} %" in metrics_table
    assert f"<th>Trades</th><td>{m.n_trades:,}</td>" in metrics_table
    for chart in ("equity-chart", "price-chart", "pnl-chart"):
        assert f'id="{chart}"' in text
    # Every trade is listed, none thinned.
    assert len(re.findall(r"<tr class=[wlz]>", text)) == 500
    # Denial reasons with counts, and the first 100 denials.
    reasons = text[text.index("id='denial-reasons'") :]
    for reason, count in m.denials_by_reason.items():
        assert f"<td>{html.escape(reason)}</td><td class='n'>{count:,}</td>" in reasons
    listed = text[text.index("id='denial-list'") :]
    listed = listed[: listed.index("</table>")]
    assert listed.count("<tr><td>") == MAX_DENIALS_LISTED
    assert f"first {MAX_DENIALS_LISTED} of 250 denials" in text


def test_all_entries_denied_is_visible(tmp_path: Path) -> None:
    result = synthetic_result(1_000, 0, 40)
    text = write_html_report(result, None, tmp_path / "denied.html").read_text()
    assert "class='alert bad'" in text and "every order was denied" in text
    assert "NOTIONAL_EXCEEDS_MAX_PER_ORDER" in text
    assert "No trades." in text and "no trades" in text  # table and histogram placeholder


def test_empty_result_renders(tmp_path: Path) -> None:
    result = synthetic_result(2, 0, 0)
    result.equity_ts_ns = result.equity_ts_ns[:0]
    result.equity = result.equity[:0]
    result.prices = {}
    text = write_html_report(result, None, tmp_path / "sub" / "empty.html").read_text()
    assert "No orders were denied." in text and "No trades." in text


def test_report_is_deterministic() -> None:
    result = synthetic_result(2_000, 50, 5)
    m = compute_metrics(result)
    assert render_html_report(result, m) == render_html_report(result, m)


# --------------------------------------------------------------------------- size


def test_size_bound_at_20k_trades_and_a_million_bars(tmp_path: Path) -> None:
    result = synthetic_result(1_000_000, 20_000, 1_000)
    started = time.perf_counter()
    path = write_html_report(result, compute_metrics(result), tmp_path / "big.html")
    elapsed = time.perf_counter() - started
    size = path.stat().st_size
    print(f"report at 20k trades / 1M bars: {size / 1e6:.2f} MB in {elapsed:.2f} s")
    assert size < MAX_REPORT_BYTES
    text = path.read_text(encoding="utf-8")
    assert len(re.findall(r"<tr class=[wlz]>", text)) == 20_000
    assert elapsed < 30


# --------------------------------------------------------------------------- decimation


def test_decimation_keeps_extremes_and_bounds_points() -> None:
    rng = np.random.default_rng(3)
    n = 1_000_003  # not a multiple of the bucket size
    x = np.arange(n, dtype=np.float64)
    y = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    y[123_457] = y.max() * 1.5  # one-point spikes must survive
    y[876_543] = y.min() * 0.5
    dx, dy = decimate_minmax(x, y)
    assert len(dx) <= MAX_LINE_POINTS
    assert np.all(np.diff(dx) > 0)  # time order kept, no duplicates
    assert dy.max() == y.max() and dy.min() == y.min()
    assert (dx[0], dx[-1]) == (0, n - 1)
    np.testing.assert_array_equal(dy, y[dx.astype(np.int64)])
    # The drawdown chart thins the drawdown series itself, so its deepest point is exact.
    dd = y / np.maximum.accumulate(y) - 1
    assert decimate_minmax(x, dd)[1].min() == dd.min()


def test_decimation_small_and_non_finite() -> None:
    x = np.arange(10.0)
    y = np.arange(10.0)
    assert decimate_minmax(x, y)[1] is y
    y = np.full(100, np.nan)
    y[50] = 1.0
    dx, _ = decimate_minmax(np.arange(100.0), y, max_points=10)
    assert len(dx) <= 10 and 50 in dx


# --------------------------------------------------------------------------- browser

CHROMIUM_TIMEOUT_S = 60
# Records uncaught errors, rejected promises and console.error calls on the root element,
# synchronously, so that Chromium's --dump-dom carries them out whenever it dumps.
ERROR_COLLECTOR = """<script>(function(){var errs=[],root=document.documentElement;
function rec(m){errs.push(String(m));root.setAttribute('data-js-errors',JSON.stringify(errs));}
root.setAttribute('data-js-errors','[]');
window.addEventListener('error',function(e){rec('error: '+(e.message||e));});
window.addEventListener('unhandledrejection',function(e){
rec('unhandledrejection: '+((e.reason&&e.reason.message)||e.reason));});
var ce=console.error;console.error=function(){
rec('console.error: '+Array.prototype.join.call(arguments,' '));
return ce.apply(console,arguments);};
})();</script>"""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path, installed with apt-get when missing (CI images lack it). A failure
    to install fails the test: a skipped browser test would hide a broken report."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )
    if found:
        return found
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(prefix + cmd, check=True, capture_output=True, timeout=900, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.fail(
            f"chromium is missing and apt-get could not install it: {exc} {detail[-2000:]!r}"
        )
    found = shutil.which("chromium")
    if not found:
        pytest.fail("apt-get installed chromium but no `chromium` is on PATH")
    return found


def chromium_command(chromium: str, profile: Path, page: Path) -> list[str]:
    # --disable-dev-shm-usage: Debian's launcher means to add it when /dev/shm is small,
    # but its check can misfire in containers; --virtual-time-budget lets timers and
    # animation frames run before the DOM is dumped, so late errors are seen too.
    return [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--window-size=1280,2000",
        "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip


def render(chromium: str, page: Path, tmp_path: Path) -> tuple[str, list[str], str]:
    """Load `page` (with the error collector injected into a copy) in headless Chromium;
    return (dumped DOM, the JS errors collected, Chromium's stderr)."""
    text = page.read_text(encoding="utf-8")
    assert "<head>" in text
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(text.replace("<head>", "<head>" + ERROR_COLLECTOR, 1), encoding="utf-8")
    profile = tmp_path / f"profile-{page.stem}"
    try:
        proc = subprocess.run(
            chromium_command(chromium, profile, probe),
            capture_output=True,
            timeout=CHROMIUM_TIMEOUT_S,
            text=True,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not render {page.name} within {CHROMIUM_TIMEOUT_S} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = re.search(r'data-js-errors="([^"]*)"', proc.stdout)
    assert match, "the error collector did not run: " + proc.stderr[-3000:]
    errors = json.loads(html.unescape(match.group(1)))
    return proc.stdout, errors, proc.stderr


def console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "Uncaught" in line or re.search(r":(?:ERROR|FATAL):CONSOLE", line)
    ]


def test_harness_sees_javascript_errors(chromium: str, tmp_path: Path) -> None:
    """The canary: a page that fails must be caught, or the real test proves nothing."""
    page = tmp_path / "canary.html"
    page.write_text(
        "<!DOCTYPE html><html><head></head><body><script>console.error('canary-1');"
        "Promise.reject(new Error('canary-2'));setTimeout(function(){null.x},50);"
        "undefinedCanary();</script></body></html>"
    )
    _, errors, stderr = render(chromium, page, tmp_path)
    joined = " ".join(errors)
    assert "canary-1" in joined and "canary-2" in joined and "undefinedCanary" in joined
    assert "null" in joined  # the error thrown from a timer
    assert console_errors(stderr), stderr[-3000:]


def test_report_renders_in_chromium_without_errors(
    chromium: str, report: tuple[BacktestResult, Path], tmp_path: Path
) -> None:
    result, path = report
    started = time.perf_counter()
    dom, errors, stderr = render(chromium, path, tmp_path)
    assert time.perf_counter() - started < CHROMIUM_TIMEOUT_S
    assert errors == []
    assert console_errors(stderr) == []
    assert dom.count('class="main-svg"') >= 3
    for chart in ("equity-chart", "price-chart", "pnl-chart"):
        assert re.search(rf'<div id="{chart}" class="[^"]*js-plotly-plot', dom), chart
    # Every entry and exit marker was drawn (they carry customdata), and the histogram.
    assert dom.count('class="point plotly-customdata"') == 2 * len(result.trades)
    assert 'class="trace bars' in dom
