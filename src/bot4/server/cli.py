"""``bot4 exchange``: the command that starts the server.

Registered on the main ``bot4`` app with ``app.command("exchange")(exchange_command)``;
also runnable alone as ``python -m bot4.server``.  aiohttp and the server modules are
imported only when the command runs, so ``bot4 --help`` stays fast.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

_HELP = {
    "host": "Interface to bind (keep 127.0.0.1 for tests).",
    "port": "TCP port; 0 picks a free one (printed as JSON).",
    "symbols": "Comma-separated symbols to list.",
    "api_key": "API key of the main account.",
    "api_secret": "HMAC secret of the main account.",
    "balances": "Deposits of the main account: ASSET=AMOUNT,...",
    "account": "Name of the main account.",
    "seed": "Seed of the market maker's random walk.",
    "replay": "Raw Binance capture driving one symbol's book (repeat for consecutive files).",
    "replay_speed": "Replay speed factor (2 = twice as fast).",
    "replay_loop": "Start the capture over at its end.",
    "bars": "Bar file (feather/parquet/csv) driving one symbol, a bar per step.",
    "bars_symbol": "The symbol the bars drive (default: the first of --symbols).",
    "bars_slice": "START:COUNT of the bar file (COUNT may be empty: to the end).",
    "bars_warm": "Bars published as history before the first step.",
    "bars_period_ms": "Step every N ms (0: only on POST /bot4/bars/step).",
    "config": "TOML file: more accounts, symbol rules, market maker, limits.",
    "state": "State file: restored at start, written on shutdown; STATE.log gets every change.",
    "autosave": "Also write the state file every N seconds (0: only on shutdown).",
    "state_sync": "Command log durability: write (survives kill -9) or fsync (power loss).",
    "market_maker": "Run the built-in market maker.",
    "mm_interval_ms": "Market maker step period in ms.",
    "mm_trade_probability": "Chance per step of a market-maker taker trade.",
    "weight_limit": "Request weight per IP per minute (Binance: 6000).",
    "orders_per_10s": "New orders per account per 10 s (Binance: 100).",
    "ban_after": "429 answers in a window before a 418 ban.",
    "ws_messages_per_second": "Incoming market-stream messages per connection per second.",
    "log_level": "Python log level.",
    "test_controls": "Serve POST /bot4/test/* fault injection (tests only).",
    "stop_on_stdin_eof": "Stop (state saved) when standard input closes: ties the server "
    "to the process holding the other end of the pipe, even through a kill -9.",
}


def exchange_command(
    host: Annotated[str, typer.Option(help=_HELP["host"])] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=_HELP["port"])] = 8900,
    symbols: Annotated[str, typer.Option(help=_HELP["symbols"])] = "BTCUSDT,ETHUSDT",
    api_key: Annotated[str | None, typer.Option(help=_HELP["api_key"])] = None,
    api_secret: Annotated[str | None, typer.Option(help=_HELP["api_secret"])] = None,
    balances: Annotated[str, typer.Option(help=_HELP["balances"])] = "USDT=1000000,BTC=10,ETH=100",
    account: Annotated[str, typer.Option(help=_HELP["account"])] = "main",
    seed: Annotated[int, typer.Option(help=_HELP["seed"])] = 0,
    replay: Annotated[list[Path] | None, typer.Option(help=_HELP["replay"])] = None,
    replay_speed: Annotated[str, typer.Option(help=_HELP["replay_speed"])] = "1",
    replay_loop: Annotated[bool, typer.Option(help=_HELP["replay_loop"])] = True,
    bars: Annotated[Path | None, typer.Option(help=_HELP["bars"])] = None,
    bars_symbol: Annotated[str | None, typer.Option(help=_HELP["bars_symbol"])] = None,
    bars_slice: Annotated[str, typer.Option(help=_HELP["bars_slice"])] = "0:",
    bars_warm: Annotated[int, typer.Option(help=_HELP["bars_warm"])] = 1,
    bars_period_ms: Annotated[int, typer.Option(help=_HELP["bars_period_ms"])] = 0,
    config: Annotated[Path | None, typer.Option(help=_HELP["config"])] = None,
    state: Annotated[Path | None, typer.Option(help=_HELP["state"])] = None,
    autosave: Annotated[int, typer.Option(help=_HELP["autosave"])] = 60,
    state_sync: Annotated[str, typer.Option(help=_HELP["state_sync"])] = "write",
    market_maker: Annotated[bool, typer.Option(help=_HELP["market_maker"])] = True,
    mm_interval_ms: Annotated[int | None, typer.Option(help=_HELP["mm_interval_ms"])] = None,
    mm_trade_probability: Annotated[
        str | None, typer.Option(help=_HELP["mm_trade_probability"])
    ] = None,
    weight_limit: Annotated[int | None, typer.Option(help=_HELP["weight_limit"])] = None,
    orders_per_10s: Annotated[int | None, typer.Option(help=_HELP["orders_per_10s"])] = None,
    ban_after: Annotated[int | None, typer.Option(help=_HELP["ban_after"])] = None,
    ws_messages_per_second: Annotated[
        int | None, typer.Option(help=_HELP["ws_messages_per_second"])
    ] = None,
    log_level: Annotated[str, typer.Option(help=_HELP["log_level"])] = "WARNING",
    test_controls: Annotated[bool, typer.Option(help=_HELP["test_controls"])] = False,
    stop_on_stdin_eof: Annotated[bool, typer.Option(help=_HELP["stop_on_stdin_eof"])] = False,
) -> None:
    """Serve a Binance-compatible spot exchange (REST + websockets) on the simulator."""
    import logging
    from dataclasses import replace

    from bot4.core.errors import ValidationError
    from bot4.server.command_log import LogError, sync_policy
    from bot4.server.config import (
        AccountSpec,
        LimitSpec,
        MakerSpec,
        ServerConfig,
        build_config,
        load_config_file,
        parse_balances,
        parse_symbols,
    )
    from bot4.server.state import StateError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if (api_key is None) != (api_secret is None):
            raise ValidationError("api_key", "give both --api-key and --api-secret", api_key)
        primary = None
        if api_key is not None and api_secret is not None:
            primary = AccountSpec(account, api_key, api_secret, parse_balances(balances))
        maker = MakerSpec(enabled=market_maker)
        if mm_interval_ms is not None:
            maker = replace(maker, interval_ms=mm_interval_ms)
        if mm_trade_probability is not None:
            maker = replace(maker, trade_probability=Decimal(mm_trade_probability))
        limits = LimitSpec()
        for name, value in (
            ("weight_per_minute", weight_limit),
            ("orders_per_10s", orders_per_10s),
            ("ban_after", ban_after),
            ("ws_messages_per_second", ws_messages_per_second),
        ):
            if value is not None:
                limits = replace(limits, **{name: value})
        start_text, sep, count_text = bars_slice.partition(":")
        if (
            not sep
            or not start_text.strip().isdigit()
            or not (count_text.strip() == "" or count_text.strip().isdigit())
        ):
            raise ValidationError("bars_slice", "expected START:COUNT (integers)", bars_slice)
        if bars_period_ms < 0:
            raise ValidationError("bars_period_ms", "must be >= 0", bars_period_ms)
        base = ServerConfig(
            host=host,
            port=port,
            seed=seed,
            replay=tuple(replay or ()),
            replay_speed=Decimal(replay_speed),
            replay_loop=replay_loop,
            bars=bars,
            bars_symbol=bars_symbol.replace("/", "").upper() if bars_symbol else None,
            bars_start=int(start_text),
            bars_count=int(count_text) if count_text.strip() else None,
            bars_warm=bars_warm,
            bars_period_ms=bars_period_ms,
            state_path=state,
            autosave_seconds=autosave,
            state_sync=sync_policy(state_sync),
            test_controls=test_controls,
            stop_on_stdin_eof=stop_on_stdin_eof,
            maker=maker,
            limits=limits,
        )
        cfg = build_config(
            base,
            parse_symbols(symbols),
            primary,
            load_config_file(config) if config is not None else None,
        )
        if not cfg.accounts:
            typer.echo(
                "warning: no account (--api-key/--api-secret or --config): market data only",
                err=True,
            )
        from bot4.server.app import run

        run(cfg)
    except (ValidationError, StateError, LogError, ValueError, OSError) as exc:
        typer.echo(f"bot4 exchange: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command()(exchange_command)
    app()
