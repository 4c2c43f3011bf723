"""The ``bot4 live`` config file (TOML), and the pieces ``bot4 paper`` shares.

    exchange = "binance"                       # any ccxt exchange id
    symbols = ["BTC/USDT"]
    strategy = "bot4.examples.sma_cross:SmaCross"
    journal = "sqlite:////var/lib/bot4/live.db"
    risk_profile = "/etc/bot4/risk.toml"       # optional; else the defaults
    websockets = true                          # false: REST polling only
    books = false                              # stream order books to on_book
    sandbox = false                            # ccxt's testnet URLs
    recv_window_ms = 5000
    timeout_ms = 10000
    [params]                                   # the strategy's parameters
    fast = 10
    [urls]                                     # optional: a binance-compatible host
    rest = "http://127.0.0.1:8900/api/v3"
    ws = "ws://127.0.0.1:8900/ws"
    ws_api = "ws://127.0.0.1:8900/ws-api/v3"
    [options]                                  # passed to ccxt's options
    [credentials]                              # optional, see below
    api_key = "..."
    secret = "..."

Credentials: ``BOT4_<EXCHANGE>_API_KEY`` / ``_SECRET`` (/ ``_PASSWORD``) from the
environment win; else ``[credentials]`` of this file -- which is then refused if it lies
inside a git work tree -- or a separate file named by ``credentials_file``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bot4.core.errors import ValidationError
from bot4.live.runner import RunnerConfig
from bot4.risk.profile import RiskProfile
from bot4.venues.ccxt_config import Credentials, VenueConfig, check_outside_repo


def journal_url(value: str) -> str:
    """A SQLAlchemy URL, or a file path for SQLite."""
    return value if "://" in value else f"sqlite:///{Path(value).expanduser().resolve()}"


def load_strategy(spec: str) -> type:
    from bot4.backtest.cli import load_strategy as load

    return load(spec)


def parse_symbols(items: list[str]) -> list[str]:
    """``BTC/USDT``-style symbols, each once (order kept).  A symbol needs a base and a
    quote (``BASE/QUOTE``): the paper server's account and the reconciliation are keyed
    by both assets, so a bare ``BTCUSDT`` would be ambiguous."""
    out: list[str] = []
    for raw in items:
        for item in filter(None, (p.strip().upper() for p in raw.split(","))):
            base, sep, quote = item.partition("/")
            if not sep or not base.isalnum() or not quote.isalnum():
                raise ValidationError("symbol", "expected BASE/QUOTE, e.g. BTC/USDT", raw)
            if item not in out:
                out.append(item)
    if not out:
        raise ValidationError("symbol", "at least one symbol", items)
    return out


def parse_params(items: list[str]) -> dict[str, str]:
    from bot4.backtest.cli import parse_params as parse

    return parse(items)


def credentials_for(
    exchange: str, data: dict[str, Any] | None = None, path: Path | None = None
) -> Credentials:
    """Environment first, then the config's ``[credentials]``/``credentials_file``."""
    creds = Credentials.from_env(exchange)
    if creds.present:
        return creds
    data = data or {}
    section = data.get("credentials")
    if isinstance(section, dict) and section:
        if path is not None:
            check_outside_repo(path.resolve())
        return Credentials.from_mapping(section)
    file = data.get("credentials_file")
    if isinstance(file, str) and file:
        return Credentials.from_file(file, exchange)
    return creds


def load_live_config(path: Path, exchange: str | None = None) -> RunnerConfig:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    name = str(data.get("exchange") or exchange or "")
    if not name:
        raise ValidationError("exchange", "name the exchange (--exchange or exchange=)", None)
    if exchange and name != exchange:
        raise ValidationError("exchange", f"the config file is for {name}", exchange)
    symbols = data.get("symbols") or ([data["symbol"]] if data.get("symbol") else [])
    if not symbols or not all(isinstance(s, str) for s in symbols):
        raise ValidationError("symbols", 'a list of symbols, e.g. ["BTC/USDT"]', symbols)
    urls = data.get("urls") or {}
    venue = VenueConfig(
        name,
        credentials_for(name, data, path),
        rest_url=urls.get("rest"),
        ws_url=urls.get("ws"),
        ws_api_url=urls.get("ws_api"),
        websockets=bool(data.get("websockets", True)),
        timeout_ms=int(data.get("timeout_ms", 10_000)),
        recv_window_ms=int(data.get("recv_window_ms", 5_000)),
        sandbox=bool(data.get("sandbox", False)),
        options=dict(data.get("options") or {}),
    )
    if not venue.credentials.present:
        raise ValidationError("credentials", f"set BOT4_{name.upper()}_API_KEY and _SECRET", None)
    risk_file = data.get("risk_profile")
    return RunnerConfig(
        venue=venue,
        symbols=list(symbols),
        strategy=load_strategy(str(data.get("strategy", "bot4.examples.sma_cross:SmaCross"))),
        params={k: str(v) for k, v in (data.get("params") or {}).items()},
        journal_url=journal_url(str(data.get("journal", "bot4-live.db"))),
        risk_profile=RiskProfile.load(risk_file) if risk_file else None,
        keep_orders=bool(data.get("keep_orders", False)),
        books=bool(data.get("books", False)),
        # rotated keys: the venue refuses the old ones -> read the same sources again
        reload_credentials=lambda: credentials_for(
            name, tomllib.loads(path.read_text(encoding="utf-8")), path
        ),
    )
