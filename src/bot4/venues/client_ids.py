"""Client order ids as each venue accepts them.

bot4 names every order itself (``B4<prefix>-<n>``, bracket exits ``...-SL``/``-TP``) and
journals the name before sending, so that after a timeout or a crash it can ask the
venue about the order by that name.  Venues differ in what a client id may be: Binance
takes ``[.A-Z:/a-z0-9_-]{1,36}``, Bybit ``[A-Za-z0-9_-]{1,36}``, but OKX only letters and
digits up to 32 characters and Kraken's ``cl_ord_id`` a UUID or 18 letters and digits.

``ClientIdCodec`` sends an id unchanged where the venue takes it, and otherwise the
32-hex-digit UUID5 of it -- a pure function of the id, so the name sent after a restart
is the same name sent before it, and a short UUID is valid on every venue here.  The
way back (venue id -> bot4 id) is a table filled as ids are encoded; ``learn`` refills
it from the journal's orders after a restart.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

_NAMESPACE = uuid.UUID("6f1c2a3e-8b4d-5e6f-9a0b-1c2d3e4f5a6b")  # bot4's, fixed forever

# exchange id -> the ids it takes as they are (others are sent as UUID5 hex)
_ACCEPTS: dict[str, re.Pattern[str]] = {
    "binance": re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$"),
    "bybit": re.compile(r"^[A-Za-z0-9_-]{1,36}$"),
    "okx": re.compile(r"^[A-Za-z0-9]{1,32}$"),
    "kraken": re.compile(r"^[A-Za-z0-9]{1,18}$"),
    "coinbase": re.compile(r"^[A-Za-z0-9_-]{1,128}$"),
}
_DEFAULT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # other ccxt venues: a safe common subset


class ClientIdCodec:
    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        key = next((k for k in _ACCEPTS if exchange.startswith(k)), None)
        self._accepts = _ACCEPTS[key] if key else _DEFAULT
        self._back: dict[str, str] = {}

    def encode(self, cid: str) -> str:
        """The name to send for bot4's ``cid``."""
        if self._accepts.match(cid):
            return cid
        sent = uuid.uuid5(_NAMESPACE, cid).hex
        self._back[sent] = cid
        return sent

    def decode(self, sent: str) -> str:
        """bot4's id for a name the venue reports (unknown names come back unchanged)."""
        return self._back.get(sent, sent)

    def learn(self, cids: Iterable[str]) -> None:
        """Refill the way back for ids sent by an earlier process (from the journal)."""
        for cid in cids:
            self.encode(cid)
