"""``bot4 paper`` and ``bot4 live``: a strategy on a venue, with a status line.

Register on the main app (``bot4/cli.py``)::

    from bot4.live.cli import live_command, paper_command
    app.command("paper")(paper_command)
    app.command("live")(live_command)

``python -m bot4.live paper|live|reset|halt ...`` runs the same commands;
``bot4 risk reset|halt`` are ``risk_reset_command`` / ``risk_halt_command``.

``bot4 paper`` without ``--exchange-url`` starts the simulator as a child process (the
``bot4 exchange`` server on a free port, with a random one-time API key, its state file
next to the journal so a restarted session finds its orders again) and stops it on the
way out; with ``--exchange-url`` it trades on a running ``bot4 exchange`` (credentials
from ``BOT4_PAPER_API_KEY``/``BOT4_PAPER_SECRET`` or ``--credentials FILE``).  A child
keeps the simulator's event loop and GIL away from the trading loop's latency, and a
paper session then talks to exactly what a live session talks to: ccxt over HTTP and
websockets.

Ctrl-C (or SIGTERM) stops cleanly: the strategy's ``on_stop``, every open order
cancelled (``--keep-orders`` leaves them working), the journal closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from bot4.core.errors import Bot4Error, ValidationError

DEFAULT_STRATEGY = "bot4.examples.sma_cross:SmaCross"


def run_config(cfg: Any, summary: Path | None) -> dict[str, Any]:
    """Run until Ctrl-C / SIGTERM / the duration; write the summary JSON if asked."""
    from bot4.live.runner import LiveRunner
    from bot4.venues.ccxt_config import install_log_redaction

    level = os.environ.get("BOT4_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction(cfg.venue.credentials.values())

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await LiveRunner(cfg).run(stop)

    result = asyncio.run(main())
    if summary is not None:
        summary.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return result


def paper_command(
    strategy: Annotated[str, typer.Option(help="MODULE:CLASS of a Strategy.")] = DEFAULT_STRATEGY,
    symbol: Annotated[
        list[str] | None,
        typer.Option(help="Symbol, e.g. BTC/USDT; repeat for several (one account)."),
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="Strategy parameter NAME=VALUE.")] = None,
    exchange_url: Annotated[
        str | None, typer.Option(help="A running bot4 exchange, http://HOST:PORT.")
    ] = None,
    journal: Annotated[str, typer.Option(help="Journal file or SQLAlchemy URL.")] = "bot4-paper.db",
    balances: Annotated[
        str, typer.Option(help="Simulator deposits (without --exchange-url).")
    ] = "USDT=100000,BTC=1",
    risk: Annotated[Path | None, typer.Option(help="Risk profile TOML.")] = None,
    keep_orders: Annotated[bool, typer.Option(help="Leave open orders on exit.")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after N seconds.")] = None,
    websockets: Annotated[bool, typer.Option(help="Websockets (else REST polling).")] = True,
    book: Annotated[bool, typer.Option(help="Stream the order book to on_book.")] = False,
    credentials: Annotated[
        Path | None, typer.Option(help="TOML with api_key/secret (outside the repo).")
    ] = None,
    summary: Annotated[Path | None, typer.Option(help="Write a JSON summary here.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the reconnect jitter.")] = None,
    status_interval: Annotated[float, typer.Option(help="Status line period (s).")] = 5.0,
) -> None:
    """Paper trading: the strategy on the simulator, through ccxt, like live."""
    from bot4.live.config import journal_url, load_strategy, parse_params, parse_symbols
    from bot4.live.runner import RunnerConfig
    from bot4.risk.profile import RiskProfile
    from bot4.venues.ccxt_config import Credentials, VenueConfig

    server = None
    try:
        symbols = parse_symbols(symbol or ["BTC/USDT"])
        cls = load_strategy(strategy)
        params = parse_params(param or [])
        url = journal_url(journal)
        if exchange_url is None:
            from bot4.server.process import ServerProcess

            key, secret = "paper-" + secrets.token_hex(8), secrets.token_hex(24)
            state = Path(journal).with_suffix(".exchange.json") if "://" not in journal else None
            args = ["--api-key", key, "--api-secret", secret, "--balances", balances]
            args += ["--symbols", ",".join(s.replace("/", "") for s in symbols)]
            if state is not None:
                args += ["--state", str(state)]
            # outlives a Ctrl-C (the trader cancels there first), not the trader itself
            server = ServerProcess(args, own_session=True, tied=True).start()
            creds = Credentials(key, secret)
            exchange_url = server.http
            reload = None
        elif credentials is not None:
            file = credentials
            creds = Credentials.from_file(file, "paper")
            reload = lambda: Credentials.from_file(file, "paper")  # noqa: E731
        else:
            creds = Credentials.from_env("paper")
            reload = lambda: Credentials.from_env("paper")  # noqa: E731
        if not creds.present:
            raise ValidationError("credentials", "set BOT4_PAPER_API_KEY and _SECRET", None)
        cfg = RunnerConfig(
            VenueConfig.local(exchange_url, creds, websockets=websockets),
            symbols,
            cls,
            params,
            journal_url=url,
            risk_profile=RiskProfile.load(risk) if risk else None,
            keep_orders=keep_orders,
            duration_s=duration,
            seed=seed,
            status_interval_s=status_interval,
            books=book,
            reload_credentials=reload,
        )
        run_config(cfg, summary)
    except (Bot4Error, OSError, RuntimeError) as exc:
        typer.echo(f"bot4 paper: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if server is not None:
            server.stop()
            server.close()


def live_command(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, e.g. binance.")] = "binance",
    config: Annotated[Path, typer.Option(help="Live config TOML (see bot4.live.config).")] = Path(
        "bot4-live.toml"
    ),
    journal: Annotated[str | None, typer.Option(help="Override the journal.")] = None,
    keep_orders: Annotated[bool, typer.Option(help="Leave open orders on exit.")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after N seconds.")] = None,
    summary: Annotated[Path | None, typer.Option(help="Write a JSON summary here.")] = None,
    status_interval: Annotated[float, typer.Option(help="Status line period (s).")] = 5.0,
) -> None:
    """Live trading on a real exchange through ccxt."""
    from bot4.live.config import journal_url, load_live_config

    try:
        cfg = load_live_config(config, exchange)
        if journal is not None:
            cfg.journal_url = journal_url(journal)
        cfg.keep_orders = cfg.keep_orders or keep_orders
        cfg.duration_s = duration
        cfg.status_interval_s = status_interval
        run_config(cfg, summary)
    except (Bot4Error, OSError, RuntimeError) as exc:
        typer.echo(f"bot4 live: {exc}", err=True)
        raise typer.Exit(2) from None


def _operator(
    action: str, journal: str, control: Path | None, staged: bool, reason: str, wait: float
) -> None:
    from bot4.live.config import journal_url
    from bot4.live.control import control_path, send

    try:
        path = control or control_path(journal_url(journal))
        answer = send(path, action, staged, reason, wait)
    except (Bot4Error, OSError) as exc:
        typer.echo(f"bot4 risk {action}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(answer))
    if not answer.get("ok"):
        raise typer.Exit(1)


_JOURNAL_HELP = "The running session's journal (file or SQLAlchemy URL)."
_CONTROL_HELP = "The session's control file (for a journal that is not a SQLite file)."


def risk_reset_command(
    journal: Annotated[str, typer.Option(help=_JOURNAL_HELP)] = "bot4-paper.db",
    control: Annotated[Path | None, typer.Option(help=_CONTROL_HELP)] = None,
    staged: Annotated[bool, typer.Option(help="Re-enable in stages (smaller sizes).")] = False,
    reason: Annotated[str, typer.Option(help="Why: journaled with the reset.")] = "",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the session.")] = 10.0,
) -> None:
    """Reset a running session's kill switch (refused while a trip condition holds)."""
    _operator("reset", journal, control, staged, reason, wait)


def risk_halt_command(
    journal: Annotated[str, typer.Option(help=_JOURNAL_HELP)] = "bot4-paper.db",
    control: Annotated[Path | None, typer.Option(help=_CONTROL_HELP)] = None,
    reason: Annotated[str, typer.Option(help="Why: journaled with the halt.")] = "",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the session.")] = 10.0,
) -> None:
    """Trip a running session's kill switch by hand: no new risk until a reset."""
    _operator("halt", journal, control, False, reason, wait)


def main() -> None:
    app = typer.Typer(add_completion=False, no_args_is_help=True)
    app.command("paper")(paper_command)
    app.command("live")(live_command)
    app.command("reset")(risk_reset_command)
    app.command("halt")(risk_halt_command)
    app()
