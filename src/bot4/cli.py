"""The ``bot4`` command."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot4 import __version__

app = typer.Typer(
    help="bot4: automated crypto trading on one event-driven core.",
    no_args_is_help=True,
    add_completion=False,
)
journal_app = typer.Typer(help="Inspect an event journal.", no_args_is_help=True)
app.add_typer(journal_app, name="journal")
risk_app = typer.Typer(help="The risk profile every order must pass.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")
console = Console()

from bot4.backtest.cli import (  # noqa: E402  (the commands live with their packages)
    backtest_command,
    download_command,
)
from bot4.live.cli import (  # noqa: E402
    live_command,
    paper_command,
    risk_halt_command,
    risk_reset_command,
)
from bot4.server.cli import exchange_command  # noqa: E402

app.command("backtest")(backtest_command)
app.command("download")(download_command)
app.command("exchange")(exchange_command)
app.command("paper")(paper_command)
app.command("live")(live_command)
risk_app.command("reset")(risk_reset_command)
risk_app.command("halt")(risk_halt_command)


@app.command()
def version() -> None:
    """Print the bot4 version."""
    console.print(__version__)


@app.command()
def demo(
    journal: Annotated[
        Path | None,
        typer.Option(help="Write the journal here (a new SQLite file); default: a temp dir."),
    ] = None,
) -> None:
    """Play a scripted trading session through the core and replay its journal."""
    from bot4.core.numbers import from_raw, money_from_raw
    from bot4.demo import run_demo

    path = journal or Path(tempfile.mkdtemp(prefix="bot4-demo-")) / "journal.db"
    if path.exists():
        console.print(f"[red]--journal {path} exists[/]: the demo writes a new journal")
        raise typer.Exit(2)
    result = run_demo(path)
    console.rule("[bold]bot4 core demo: BTCUSDT bracket order")
    for i, step in enumerate(result.steps, 1):
        console.print(f"{i:>2}. {step}")
    console.rule("Rejected on purpose (state unchanged after each)")
    for label, err in result.rejections:
        console.print(f"[yellow]{label}[/]: {err}")

    orders = Table(title="Orders")
    for col in ("client id", "side", "type", "qty", "filled", "avg price", "status"):
        orders.add_column(col)
    for o in result.state.orders.values():
        orders.add_row(
            o.client_order_id,
            o.side.value,
            o.order_type.value,
            str(o.quantity),
            str(o.filled_qty),
            str(o.avg_fill_price or "-"),
            o.status.value,
        )
    console.print(orders)
    balances = Table(title="Balances")
    for col in ("asset", "free", "locked"):
        balances.add_column(col)
    for asset, bal in result.state.account.balances.items():
        balances.add_row(asset, str(money_from_raw(bal.free)), str(money_from_raw(bal.locked)))
    console.print(balances)
    for pos in result.state.positions.values():
        fees = ", ".join(f"{money_from_raw(v)} {k}" for k, v in sorted(pos.fees_money.items()))
        console.print(
            f"Position {pos.symbol}: qty {from_raw(pos.qty_raw)}, realized P&L "
            f"{pos.realized_pnl} USDT, fees {fees}"
        )
    ok = result.replay_matches
    console.print(
        f"Journal {result.journal_path}: {result.events} events; replay rebuilds the same "
        f"orders, positions and balances: [{'green' if ok else 'red'}]{ok}[/]"
    )
    if not ok:
        raise typer.Exit(1)


@journal_app.command("verify")
def journal_verify(
    url: Annotated[str, typer.Argument(help="SQLite file path or SQLAlchemy URL.")],
) -> None:
    """Report sequence gaps and out-of-order events; exit 1 if any."""
    from bot4.oms.journal import SqlJournal

    with SqlJournal(_url(url)) as j:
        anomalies = j.verify()
        console.print(f"{j.last_seq} events, {len(anomalies)} anomalies")
        for a in anomalies:
            console.print(
                f"[red]{a.kind}[/] at row {a.row_id}: expected seq {a.expected}, got {a.got}"
            )
    if anomalies:
        raise typer.Exit(1)


@journal_app.command("show")
def journal_show(
    url: Annotated[str, typer.Argument(help="SQLite file path or SQLAlchemy URL.")],
    from_seq: Annotated[int, typer.Option(help="First sequence number to show.")] = 1,
    limit: Annotated[int, typer.Option(help="Most events to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Print events from a journal."""
    from bot4.oms.journal import SqlJournal

    with SqlJournal(_url(url)) as j:
        table = Table("seq", "ts_event", "kind", "fields")
        for n, ev in enumerate(j.read(from_seq)):
            if n >= limit:
                break
            payload = ev.to_payload()
            if as_json:
                print(
                    json.dumps({"seq": ev.seq, "ts_event": ev.ts_event, "kind": ev.kind, **payload})
                )
            else:
                table.add_row(str(ev.seq), str(ev.ts_event), ev.kind, json.dumps(payload))
        if not as_json:
            console.print(table)


@risk_app.command("profile")
def risk_profile() -> None:
    """Print the default risk profile (save it, edit it, pass it to bot4)."""
    from bot4.risk.profile import DEFAULT_PROFILE_TEXT

    print(DEFAULT_PROFILE_TEXT, end="")


@risk_app.command("check")
def risk_check(path: Annotated[Path, typer.Argument(help="A risk profile TOML file.")]) -> None:
    """Validate a risk profile file and print its rules; exit 2 on a bad file."""
    from bot4.core.errors import ValidationError
    from bot4.risk.profile import RiskProfile

    try:
        profile = RiskProfile.load(path)
    except (OSError, ValidationError) as err:
        console.print(f"[red]{path}[/]: {err}")
        raise typer.Exit(2) from None
    table = Table("rule", "value", title=f"{path} ({profile.quote_currency})")
    for section in (profile.limits, profile.kill_switch):
        for name in section.__dataclass_fields__:
            table.add_row(name, str(getattr(section, name)))
    table.add_row("recovery stages", ", ".join(f"{a}s: {s}" for a, s in profile.stages))
    console.print(table)


def _url(value: str) -> str:
    return value if "://" in value else f"sqlite:///{Path(value).resolve()}"


if __name__ == "__main__":
    app()
