"""``bot4 backtest``: run a strategy over bars and report, with a progress bar."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from bot4.core.errors import Bot4Error, ValidationError

if TYPE_CHECKING:
    from bot4.backtest.result import BacktestResult

DEFAULT_STRATEGY = "bot4.examples.sma_cross:SmaCross"
err_console = Console(stderr=True)


def load_strategy(spec: str) -> type:
    """``package.module:ClassName`` -> the class (a Strategy subclass)."""
    from bot4.strategy.base import Strategy

    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ValidationError("strategy", "MODULE:CLASS", spec)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError("strategy", f"cannot import {module_name}: {exc}", spec) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ValidationError("strategy", "not a bot4 Strategy class", spec)
    return cls


def parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValidationError("param", "NAME=VALUE", item)
        params[name.strip()] = value.strip()
    return params


def backtest_command(
    strategy: Annotated[str, typer.Option(help="MODULE:CLASS of the strategy.")] = DEFAULT_STRATEGY,
    data: Annotated[
        Path | None,
        typer.Option(help="Bars (feather, parquet, csv); default: seeded synthetic bars."),
    ] = None,
    symbol: Annotated[str, typer.Option(help="The data's symbol.")] = "BTC/USDT",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter NAME=VALUE.")
    ] = None,
    cash: Annotated[str, typer.Option(help="Starting cash in the quote currency.")] = "10000000",
    fee_bps: Annotated[str, typer.Option(help="Taker fee in basis points.")] = "10",
    maker_fee_bps: Annotated[
        str | None, typer.Option(help="Maker fee in bps (default: the taker fee).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the results.")
    ] = False,
    trades_csv: Annotated[
        Path | None, typer.Option("--trades", help="Write the round-trip trades as CSV.")
    ] = None,
    bars: Annotated[int, typer.Option(help="Synthetic bars when no --data.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic bars.")] = 42,
    risk_profile: Annotated[
        Path | None, typer.Option(help="A risk profile TOML (see `bot4 risk profile`).")
    ] = None,
    journal: Annotated[
        Path | None, typer.Option(help="Journal every event to this SQLite file.")
    ] = None,
    quotes: Annotated[
        Path | None,
        typer.Option(help="Tick data: a tardis quotes CSV merged with --data's trades."),
    ] = None,
    latency: Annotated[
        str,
        typer.Option(help='Tick data: order latency in ms, or "calibrated" (seeded).'),
    ] = "0",
) -> None:
    """Backtest a strategy; prints a summary and the report's path (or JSON)."""
    from bot4.backtest.engine import normalize_symbol
    from bot4.data.ticks import tick_file_kind
    from bot4.risk.profile import RiskProfile

    try:
        cls = load_strategy(strategy)
        params: dict[str, str] = parse_params(param or [])
        sym = normalize_symbol(symbol)
        profile = RiskProfile.load(risk_profile) if risk_profile else None
        if data is not None and tick_file_kind(data) is not None:
            paths = [data, *([quotes] if quotes else [])]
            result = _tick_backtest(
                cls, paths, params, cash, fee_bps, maker_fee_bps, latency, seed, profile
            )
            sym = result.symbols[0]
        else:
            if quotes is not None:
                raise ValidationError("quotes", "only with tick data in --data", str(quotes))
            result = _bar_backtest(
                cls, data, sym, params, cash, fee_bps, maker_fee_bps, bars, seed, profile, journal
            )
    except (Bot4Error, OSError, ArithmeticError) as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    _report(result, sym, report, as_json, trades_csv)


def _tick_backtest(
    cls: type,
    paths: list[Path],
    params: dict[str, str],
    cash: str,
    fee_bps: str,
    maker_fee_bps: str | None,
    latency: str,
    seed: int,
    profile: object,
) -> BacktestResult:
    from bot4.backtest.ticks import TickBacktest
    from bot4.data.ticks import load_tick_events
    from bot4.risk.profile import RiskProfile

    assert profile is None or isinstance(profile, RiskProfile)
    if latency == "calibrated":
        lat: int | str = "calibrated"
    else:
        try:
            lat = int(Decimal(latency) * 1_000_000)
        except ArithmeticError:
            raise ValidationError("latency", 'milliseconds or "calibrated"', latency) from None
    events = load_tick_events(paths, None)
    bt = TickBacktest(
        cls,
        events,
        params=params,
        cash=cash,
        fee_bps=Decimal(fee_bps),
        maker_fee_bps=Decimal(maker_fee_bps) if maker_fee_bps else None,
        latency=lat,
        seed=seed,
        risk_profile=profile,
    )
    with _progress("events") as progress:
        task = progress.add_task(f"{cls.__name__} {bt.symbols[0]}", total=len(events))
        return bt.run(lambda done, total: progress.update(task, completed=done))


def _progress(unit: str) -> Progress:
    """The run's progress bar on stderr (off when stderr is not a terminal)."""
    return Progress(
        TextColumn("[bold]backtest[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} " + unit),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def _bar_backtest(
    cls: type,
    data: Path | None,
    sym: str,
    params: dict[str, str],
    cash: str,
    fee_bps: str,
    maker_fee_bps: str | None,
    bars: int,
    seed: int,
    profile: object,
    journal: Path | None,
) -> BacktestResult:
    from bot4.backtest.engine import Backtest
    from bot4.data.bars import load_bars, synthetic_bars
    from bot4.risk.profile import RiskProfile

    assert profile is None or isinstance(profile, RiskProfile)
    series = load_bars(data, sym) if data else synthetic_bars(bars, sym, seed=seed)
    if journal is not None and journal.exists():
        raise ValidationError("journal", "exists; a backtest writes a new journal", str(journal))
    bt = Backtest(
        cls,
        series,
        params=params,
        cash=cash,
        fee_bps=Decimal(fee_bps),
        maker_fee_bps=Decimal(maker_fee_bps) if maker_fee_bps else None,
        risk_profile=profile,
        journal_url=f"sqlite:///{journal.resolve()}" if journal else None,
    )
    with _progress("bars") as progress:
        task = progress.add_task(f"{cls.__name__} {sym}", total=len(series))
        return bt.run(lambda done, total: progress.update(task, completed=done))


def _report(
    result: BacktestResult, sym: str, report: Path | None, as_json: bool, trades_csv: Path | None
) -> None:
    from bot4.backtest.metrics import compute_metrics
    from bot4.backtest.report import write_html_report

    metrics = compute_metrics(result)
    report_path = report
    if report_path is None and not as_json:
        report_path = Path("bot4-report.html")
    if report_path is not None:
        write_html_report(result, metrics, report_path)
    if trades_csv is not None:
        write_trades_csv(result, trades_csv)
    summary = {
        "strategy": result.strategy,
        "symbol": sym,
        "bars": result.bars,
        "trades": result.entries,
        "fills": len(result.fills),
        "denials": len(result.denials),
        "final_equity": str(result.final_equity),
        "total_return": metrics.total_return,
        "max_drawdown": metrics.max_drawdown,
        "sharpe": metrics.sharpe,
        "win_rate": metrics.win_rate,
        "fees_paid": metrics.fees_paid,
        "seconds": round(result.seconds, 3),
    }
    if as_json:
        if report_path is not None:
            summary["report"] = str(report_path)
        print(json.dumps(summary, sort_keys=False))
        return
    out = Console()
    out.print(
        f"[bold]{result.strategy}[/] on {sym}: {result.bars:,} bars, {result.entries:,} trades, "
        f"{len(result.denials):,} denied, final equity {result.final_equity:,.2f} "
        f"({_pct(metrics.total_return)}), max drawdown {_pct(metrics.max_drawdown)}, "
        f"Sharpe {metrics.sharpe if metrics.sharpe is None else round(metrics.sharpe, 2)}, "
        f"{result.bars / max(result.seconds, 1e-9):,.0f} bars/s"
    )
    if result.denials:
        reasons: dict[str, int] = {}
        for d in result.denials:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
        out.print(
            "[yellow]denied by the risk engine[/]: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items()))
        )
    print(f"report: {report_path.resolve() if report_path else '-'}")  # one line, unwrapped


def write_trades_csv(result: object, path: Path) -> None:
    from bot4.backtest.result import BacktestResult

    assert isinstance(result, BacktestResult)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "symbol",
                "side",
                "entry_ts_ns",
                "exit_ts_ns",
                "qty",
                "entry_price",
                "exit_price",
                "pnl",
                "fees",
            ]
        )
        for t in result.trades:
            writer.writerow(
                [
                    t.symbol,
                    t.side,
                    t.entry_ts_ns,
                    t.exit_ts_ns,
                    t.qty,
                    t.entry_price,
                    t.exit_price,
                    t.pnl,
                    t.fees,
                ]
            )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f} %"


if __name__ == "__main__":  # pragma: no cover
    typer.run(backtest_command)
    sys.exit(0)


def download_command(
    exchange: Annotated[str, typer.Option(help="A ccxt exchange id (binance, kraken, ...).")],
    symbol: Annotated[str, typer.Option(help="Market symbol, e.g. BTC/USDT.")],
    out: Annotated[Path, typer.Option(help="Feather file to write (resumed if it exists).")],
    timeframe: Annotated[str, typer.Option(help="Candle size.")] = "1m",
    since: Annotated[str, typer.Option(help="Start: 2025-01-01 or epoch ms.")] = "2025-01-01",
    until: Annotated[str | None, typer.Option(help="End (default: now).")] = None,
    api_url: Annotated[
        str | None,
        typer.Option(help="Override the exchange's REST URL (e.g. a local `bot4 exchange`)."),
    ] = None,
) -> None:
    """Download candles through ccxt with a progress bar; resumes where it stopped."""
    from bot4.data.download import download_ohlcv, make_exchange, parse_since

    try:
        options: dict[str, object] = {}
        if exchange == "binance":
            options = {
                "options": {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                }
            }
        ex = make_exchange(exchange, options)
        if api_url:
            ex.urls["api"]["public"] = api_url
            ex.urls["api"]["private"] = api_url
        since_ms = parse_since(since)
        until_ms = parse_since(until) if until else None
        with Progress(
            TextColumn(f"[bold]download[/] {exchange} {symbol} {timeframe}"),
            BarColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        ) as progress:
            task = progress.add_task("", total=1)
            n = download_ohlcv(
                ex,
                symbol,
                timeframe,
                since_ms,
                out,
                until_ms=until_ms,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except Bot4Error as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # ccxt's network and exchange errors
        err_console.print(f"[red]error[/]: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    print(f"{n} new candles -> {out.resolve()}")
