"""Signed requests the way Binance checks them: key, signature, then time.

REST: the signature is the hex HMAC-SHA256 of the *raw* parameter string as it was
sent (query string, then form body, with the ``signature`` parameter taken out),
never of re-encoded parameters: re-encoding would accept a request the client did not
sign (a different percent-encoding of the same values) and reject one it did.

WebSocket API (``userDataStream.subscribe.signature``): the payload is the key-sorted
params joined as ``k=v&...`` without url-encoding, which is what Binance and ccxt use.

Order of the checks: the key first (-2014 malformed, -2015 unknown), then the
signature (-1022), and only then the timestamp (-1021), so an unauthenticated caller
learns nothing about the server's clock.  ``recvWindow`` is at most 60000 ms (-1131);
a timestamp more than 1 s ahead of the server is refused, as Binance does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from bot4.core.clock import Clock
from bot4.server.params import Params
from bot4.sim.errors import BinanceError, InvalidApiKey, MandatoryParameter

MAX_RECV_WINDOW: Final = 60_000
DEFAULT_RECV_WINDOW: Final = 5_000
AHEAD_MS: Final = 1_000
_HEX: Final = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class Credential:
    api_key: str
    secret: bytes
    account: str


def bad_signature() -> BinanceError:
    return BinanceError("Signature for this request is not valid.", -1022)


def strip_signature(raw: bytes) -> tuple[bytes, bytes | None]:
    """(the raw string without its ``signature=`` parameter, the signature or None)."""
    if not raw:
        return raw, None
    parts = raw.split(b"&")
    kept: list[bytes] = []
    signature: bytes | None = None
    for part in parts:
        if part.startswith(b"signature="):
            if signature is not None:
                raise BinanceError("Duplicate values for a parameter detected.", -1101)
            signature = part[len(b"signature=") :]
        else:
            kept.append(part)
    return b"&".join(kept), signature


def sign(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


class Authenticator:
    """API keys and their secrets; verifies signed requests."""

    def __init__(self, credentials: Iterable[Credential], clock: Clock) -> None:
        self.keys = {c.api_key: c for c in credentials}
        self.clock = clock

    def credential(self, api_key: str | None) -> Credential:
        if api_key is None or not api_key:
            raise BinanceError("API-key format invalid.", -2014)
        if len(api_key) > 256 or not api_key.isascii() or not api_key.isprintable():
            raise BinanceError("API-key format invalid.", -2014)
        cred = self.keys.get(api_key)
        if cred is None:
            raise InvalidApiKey()
        return cred

    def verify_rest(
        self, api_key: str | None, query: bytes, body: bytes, params: Params
    ) -> Credential:
        """Check a signed REST request; ``query`` and ``body`` are the raw bytes."""
        cred = self.credential(api_key)
        q_payload, q_sig = strip_signature(query)
        b_payload, b_sig = strip_signature(body)
        if q_sig is not None and b_sig is not None:
            raise BinanceError("Duplicate values for a parameter detected.", -1101)
        signature = q_sig if q_sig is not None else b_sig
        params.mark_read("signature")
        if not signature:
            raise MandatoryParameter("signature")
        self._check_signature(cred, q_payload + b_payload, signature)
        self.check_time(params.integer("timestamp"), params.integer("recvWindow"))
        return cred

    def verify_ws(self, params: dict[str, object]) -> Credential:
        """Check ``userDataStream.subscribe.signature`` params."""
        key = params.get("apiKey")
        cred = self.credential(key if isinstance(key, str) else None)
        signature = params.get("signature")
        if not isinstance(signature, str) or not signature:
            raise MandatoryParameter("signature")
        parts: list[str] = []
        for k in sorted(params):
            if k == "signature":
                continue
            v = params[k]
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise BinanceError(f"Invalid value for parameter '{k}'.", -1100)
            parts.append(f"{k}={v}")
        self._check_signature(
            cred, "&".join(parts).encode("utf-8"), signature.encode("ascii", "replace")
        )
        ts, window = params.get("timestamp"), params.get("recvWindow")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
            raise MandatoryParameter("timestamp")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
            raise BinanceError("recvWindow must be less than 60000", -1131)
        self.check_time(ts, window)
        return cred

    def _check_signature(self, cred: Credential, payload: bytes, signature: bytes) -> None:
        if len(signature) != 64 or not set(signature.decode("ascii", "replace")) <= _HEX:
            raise bad_signature()
        expected = sign(cred.secret, payload).encode("ascii")
        if not hmac.compare_digest(expected, signature.lower()):
            raise bad_signature()

    def check_time(self, timestamp: int | None, recv_window: int | None) -> None:
        """-1021 outside the receive window or more than 1 s ahead of the server."""
        if timestamp is None:
            raise MandatoryParameter("timestamp")
        window = DEFAULT_RECV_WINDOW if recv_window is None else recv_window
        if not 0 < window <= MAX_RECV_WINDOW:
            raise BinanceError("recvWindow must be less than 60000", -1131)
        now = self.clock.now_ns() // 1_000_000
        if timestamp > now + AHEAD_MS:
            raise BinanceError(
                "Timestamp for this request was 1000ms ahead of the server's time.", -1021
            )
        if now - timestamp > window:
            raise BinanceError("Timestamp for this request is outside of the recvWindow.", -1021)
