"""How to reach a venue through ccxt: exchange name, credentials, endpoints, options.

Credentials come from environment variables (``BOT4_<EXCHANGE>_API_KEY``,
``..._SECRET`` and, for OKX-style venues, ``..._PASSWORD``) or from a TOML file that
lies outside any git work tree: a key file inside a repository is one ``git add`` away
from being published, so it is refused.  ``Credentials`` never shows its values in a
``repr``/``str``, and nothing in bot4 journals or logs them; ``redact`` scrubs them from
any text that could carry them (an exception message with a signed URL, say).

``make_client`` builds the ccxt instance: ``ccxt.pro`` (websockets) when the exchange
has it, else ``ccxt.async_support``.  With ``rest_url``/``ws_url`` (binance-style
venues: the local ``bot4 exchange`` server, a testnet) every endpoint is pointed there
and the settings of binance-spot-subset.md keep ccxt on spot and on that one host.
ccxt's own throttle is switched off: every request already waits in bot4's shared
``VenueLimiter`` (``rate_limit``), and two limiters in series only add latency.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot4.core.errors import ValidationError

# The venues the issue names; any other ccxt exchange id works too.
KNOWN_EXCHANGES = ("binance", "kraken", "coinbase", "okx", "bybit")


@dataclass(frozen=True, slots=True)
class Credentials:
    """API credentials; ``repr`` and ``str`` never show the values."""

    api_key: str = ""
    secret: str = ""
    password: str = ""

    def __repr__(self) -> str:
        shown = "set" if self.api_key else "none"
        return f"Credentials(<{shown}, redacted>)"

    __str__ = __repr__

    @property
    def present(self) -> bool:
        return bool(self.api_key and self.secret)

    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.api_key, self.secret, self.password) if v)

    @classmethod
    def from_env(cls, exchange: str, env: dict[str, str] | None = None) -> Credentials:
        """``BOT4_<EXCHANGE>_API_KEY`` / ``_SECRET`` / ``_PASSWORD``."""
        env = dict(os.environ) if env is None else env
        prefix = f"BOT4_{exchange.upper()}_"
        return cls(
            env.get(prefix + "API_KEY", ""),
            env.get(prefix + "SECRET", "") or env.get(prefix + "API_SECRET", ""),
            env.get(prefix + "PASSWORD", ""),
        )

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Credentials:
        def text(*names: str) -> str:
            for name in names:
                value = data.get(name)
                if isinstance(value, str) and value:
                    return value
            return ""

        return cls(
            text("api_key", "apiKey"), text("secret", "api_secret"), text("password", "passphrase")
        )

    @classmethod
    def from_file(cls, path: str | Path, exchange: str) -> Credentials:
        """A TOML file with ``api_key``/``secret`` at the top or under ``[exchange]`` or
        ``[credentials]``; refused inside a git work tree."""
        p = Path(path).expanduser().resolve()
        check_outside_repo(p)
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        for section in (exchange, "credentials"):
            sub = data.get(section)
            if isinstance(sub, dict) and sub.get("api_key"):
                return cls.from_mapping(sub)
        return cls.from_mapping(data)


def check_outside_repo(path: Path) -> None:
    """Refuse a secrets file inside a git work tree (``.git`` in it or a parent)."""
    for parent in path.parents:
        if (parent / ".git").exists():
            raise ValidationError(
                "config",
                "a file with credentials must live outside any git repository",
                str(path),
                f"inside {parent}",
            )


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without the given secret values and without URL query strings (signed
    requests carry ``signature=...`` there)."""
    for value in secrets:
        if value:
            text = text.replace(value, "<redacted>")
    return _QUERY.sub("?<query>", text)


_QUERY = re.compile(r"\?[^\s\"']+")


class RedactFilter(logging.Filter):
    """Rewrites a log record without the secrets (and without signed query strings):
    attached to the logger ccxt writes its wire log to (which, at DEBUG, prints request
    headers with the API key), and by the commands to every root handler."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def add(self, secrets: tuple[str, ...]) -> None:
        """Also redact these (credentials reloaded while running)."""
        self.secrets = (*self.secrets, *(s for s in secrets if s and s not in self.secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg, self.secrets)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text, self.secrets)
        return True


def install_log_redaction(secrets: tuple[str, ...]) -> None:
    """Redact ``secrets`` from everything the root logger's handlers write."""
    filt = RedactFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(filt)


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """Everything ``make_client`` and the adapter need to talk to one venue."""

    exchange: str = "binance"
    credentials: Credentials = field(default_factory=Credentials)
    rest_url: str | None = None  # e.g. http://127.0.0.1:8900/api/v3 (binance-style)
    ws_url: str | None = None  # market streams, e.g. ws://127.0.0.1:8900/ws
    ws_api_url: str | None = None  # user data, e.g. ws://127.0.0.1:8900/ws-api/v3
    websockets: bool = True  # False: REST polling only
    timeout_ms: int = 10_000
    recv_window_ms: int = 5_000  # a signed request older than this is refused by the venue
    sandbox: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # REST polling period without websockets; one poll costs Binance weight 26 (open
    # orders 6 + my trades 20) per symbol: 1 s uses 1,560 of the 6,000 a minute allows
    poll_interval_s: float = 1.0

    def __repr__(self) -> str:
        return (
            f"VenueConfig(exchange={self.exchange!r}, rest_url={self.rest_url!r}, "
            f"websockets={self.websockets}, credentials={self.credentials!r})"
        )

    @classmethod
    def local(cls, base_url: str, credentials: Credentials, **kw: Any) -> VenueConfig:
        """A ``bot4 exchange`` server (or any binance-compatible one) at ``base_url``
        (``http://host:port``)."""
        base = base_url.rstrip("/")
        ws = "ws" + base[4:] if base.startswith("http") else base
        return cls(
            "binance",
            credentials,
            rest_url=f"{base}/api/v3",
            ws_url=f"{ws}/ws",
            ws_api_url=f"{ws}/ws-api/v3",
            **kw,
        )


def _module(pro: bool) -> Any:
    if pro:
        import ccxt.pro as module
    else:
        import ccxt.async_support as module
    return module


def make_client(cfg: VenueConfig) -> Any:
    """The ccxt client for ``cfg`` (pro when available and wanted)."""
    pro_mod = _module(True)
    cls = getattr(pro_mod, cfg.exchange, None) if cfg.websockets else None
    if cls is None:
        cls = getattr(_module(False), cfg.exchange, None)
    if cls is None:
        raise ValidationError("exchange", "not a ccxt exchange", cfg.exchange)
    options: dict[str, Any] = {"defaultType": "spot"}
    if cfg.exchange == "binance":
        options.update(
            {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "recvWindow": cfg.recv_window_ms,
            }
        )
    options.update(cfg.options)
    settings: dict[str, Any] = {
        "options": options,
        "enableRateLimit": False,  # bot4's VenueLimiter paces every request
        "timeout": cfg.timeout_ms,
    }
    creds = cfg.credentials
    if creds.present:
        settings["apiKey"] = creds.api_key
        settings["secret"] = creds.secret
        if creds.password:
            settings["password"] = creds.password
    client = cls(settings)
    # ccxt logs through ``client.logger``; give it one that scrubs the credentials.
    wire = logging.getLogger(f"bot4.venues.wire.{cfg.exchange}.{id(client)}")
    wire.addFilter(RedactFilter(creds.values()))
    client.logger = wire
    if cfg.sandbox:
        client.set_sandbox_mode(True)
    if cfg.rest_url:
        client.urls["api"]["public"] = cfg.rest_url
        client.urls["api"]["private"] = cfg.rest_url
    ws = client.urls["api"].get("ws") if isinstance(client.urls.get("api"), dict) else None
    if isinstance(ws, dict):
        if cfg.ws_url:
            ws["spot"] = cfg.ws_url
        if cfg.ws_api_url and isinstance(ws.get("ws-api"), dict):
            ws["ws-api"]["spot"] = cfg.ws_api_url
    return client
