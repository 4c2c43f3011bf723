"""User data over the WebSocket API (``/ws-api/v3``): orders and balances, pushed.

ccxt (spot) subscribes with ``userDataStream.subscribe.signature`` (no listenKey):
``{"id", "method", "params": {apiKey, timestamp, recvWindow, signature}}``, answered with
``{"id", "status": 200, "result": {"subscriptionId": n}}``.  From then on every engine
report of that account is pushed as ``{"subscriptionId": n, "event": executionReport}``,
followed by one ``outboundAccountPosition`` with the balances of the assets the reports
touched, exactly what Binance sends after an order event.

Also served: ``ping``, ``time``, ``session.subscriptions`` and
``userDataStream.unsubscribe``.  Errors are ``{"id", "status": 4xx, "error": {"code",
"msg"}}`` with Binance's codes; a malformed message never closes the connection (except
for the message-rate limit).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any, Final

from aiohttp import WSMsgType, web

from bot4.server.auth import Authenticator
from bot4.server.exchange import Exchange
from bot4.server.formats import fmt_money
from bot4.server.orders import execution_report_event
from bot4.server.outbox import Outbox
from bot4.sim.errors import BinanceError
from bot4.sim.matching_types import ExecutionReport

log = logging.getLogger(__name__)

_STATUS: Final = {-1003: 429, -2014: 401, -2015: 401, -1000: 500}


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


class UserSession:
    """One WebSocket API connection and its user-data subscriptions."""

    __slots__ = ("out", "subscriptions")

    def __init__(self, out: Outbox) -> None:
        self.out = out
        self.subscriptions: dict[int, str] = {}  # subscription id -> account


class UserStreamHub:
    def __init__(
        self, ex: Exchange, auth: Authenticator, msg_rate: int = 5, heartbeat: float = 20.0
    ) -> None:
        self.ex = ex
        self.auth = auth
        self.msg_rate = msg_rate
        self.heartbeat = heartbeat
        self.by_account: dict[str, set[tuple[UserSession, int]]] = {}
        self.sessions: set[UserSession] = set()
        self._next_sub = 0
        ex.user_sink = self.on_reports

    # -- pushing events ------------------------------------------------------------------
    def on_reports(self, account: str, reports: list[ExecutionReport]) -> None:
        targets = self.by_account.get(account)
        if not targets:
            return
        now = self.ex.now_ms()
        hist = self.ex.history.get(account)
        events: list[dict[str, Any]] = []
        assets: set[str] = set()
        for r in reports:
            rec = None
            if hist is not None:
                rec = hist.open.get(r.order_id) or hist.closed.get(r.order_id)
            events.append(execution_report_event(r, rec, now))
            inst = self.ex.instruments[r.symbol]
            assets.update((inst.base, inst.quote))
        balances = self.ex.engine.account(account).balances
        events.append(
            {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [
                    {"a": a, "f": fmt_money(balances[a].free), "l": fmt_money(balances[a].locked)}
                    for a in sorted(assets)
                    if a in balances
                ],
            }
        )
        for session, sub_id in list(targets):
            for ev in events:
                if not session.out.push(_dumps({"subscriptionId": sub_id, "event": ev})):
                    log.warning("closing a slow user-data consumer")
                    self._forget(session)
                    break

    def _forget(self, session: UserSession) -> None:
        for sub_id, account in session.subscriptions.items():
            targets = self.by_account.get(account)
            if targets is not None:
                targets.discard((session, sub_id))
                if not targets:
                    del self.by_account[account]
        session.subscriptions.clear()
        self.sessions.discard(session)

    # -- requests -------------------------------------------------------------------------
    def on_message(self, session: UserSession, text: str) -> dict[str, Any]:
        rid: Any = None
        try:
            try:
                req = json.loads(text)
            except ValueError:
                raise BinanceError("Malformed request: not JSON.", -1000) from None
            if not isinstance(req, dict):
                raise BinanceError("Malformed request: not a JSON object.", -1000)
            rid = req.get("id")
            if isinstance(rid, bool) or not isinstance(rid, int | str | None):
                rid = None
                raise BinanceError("Invalid 'id': expected an integer or a string.", -1100)
            if isinstance(rid, str) and len(rid) > 64:
                rid = None
                raise BinanceError("Invalid 'id': at most 64 characters.", -1100)
            method = req.get("method")
            params = req.get("params", {})
            if not isinstance(params, dict):
                raise BinanceError("Malformed request: 'params' must be an object.", -1100)
            result = self._call(session, method, params)
            return {"id": rid, "status": 200, "result": result}
        except BinanceError as exc:
            return {"id": rid, "status": _STATUS.get(exc.code, 400), "error": exc.to_dict()}

    def _call(self, session: UserSession, method: object, params: dict[str, Any]) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.ex.now_ms()}
        if method == "userDataStream.subscribe.signature":
            cred = self.auth.verify_ws(params)
            sub_id = self._next_sub
            self._next_sub += 1
            session.subscriptions[sub_id] = cred.account
            self.by_account.setdefault(cred.account, set()).add((session, sub_id))
            return {"subscriptionId": sub_id}
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            ids = list(session.subscriptions) if wanted is None else [wanted]
            for i in ids:
                if isinstance(i, bool) or not isinstance(i, int) or i not in session.subscriptions:
                    raise BinanceError("Invalid subscriptionId.", -1100)
            for i in ids:
                account = session.subscriptions.pop(i)
                self.by_account.get(account, set()).discard((session, i))
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": i} for i in sorted(session.subscriptions)]
        raise BinanceError("This operation is not supported.", -1020)

    # -- the connection -------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=65_536)
        await ws.prepare(request)
        session = UserSession(Outbox(ws, self.msg_rate))
        self.sessions.add(session)
        code, why = 1000, b""
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    if not session.out.allow():
                        code, why = 1008, b"Too many messages"
                        break
                    if not session.out.push(_dumps(self.on_message(session, msg.data))):
                        break
                elif msg.type is WSMsgType.BINARY:
                    err = BinanceError("Malformed request: binary frames are not accepted.", -1000)
                    session.out.push(_dumps({"id": None, "status": 400, "error": err.to_dict()}))
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._forget(session)
            await session.out.finish(code, why)
        return ws

    async def close_all(self) -> None:
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.out.ws.close(code=1001, message=b"server shutdown")
