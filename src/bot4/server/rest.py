"""REST endpoints under ``/api/v3``: one dispatcher, Binance's order of checks.

Each request goes: parse the raw parameters (query, then body) -> charge its weight
to the caller's IP (429/418 here, before any work) -> for signed endpoints verify key,
signature and time -> for new orders charge the account's order count -> run the
endpoint.  Every answer, error or not, carries ``X-MBX-USED-WEIGHT-1M``; every error
is ``{"code": N, "msg": "..."}``.  An unexpected exception becomes -1000 with status 500
and is logged: the server answers and stays up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from bot4.server.auth import Authenticator, Credential
from bot4.server.exchange import Exchange
from bot4.server.limits import Decision, OrderLimiter, WeightLimiter
from bot4.server.params import Params, parse_pairs
from bot4.server.public import PublicApi
from bot4.server.trading import (
    account_json,
    cancel_order,
    cancel_response,
    check_only,
    new_order_response,
    parse_new_order,
    query_order,
)
from bot4.sim.errors import BinanceError

log = logging.getLogger(__name__)

_STATUS: Final = {-1003: 429, -1015: 429, -2014: 401, -2015: 401, -1000: 500}
_BODY_METHODS: Final = frozenset({"POST", "PUT", "DELETE"})

Handler = Callable[[Params, Credential | None], Any]
Weigher = Callable[[Params], int]


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


def error_response(
    exc: BinanceError, headers: dict[str, str] | None = None, status: int = 0
) -> web.Response:
    return web.Response(
        text=dumps(exc.to_dict()),
        status=status or _STATUS.get(exc.code, 400),
        content_type="application/json",
        headers=headers,
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    weight: Weigher
    signed: bool = False
    counts_order: bool = False


def fixed(n: int) -> Weigher:
    return lambda _p: n


def by_symbol(with_symbol: int, without: int) -> Weigher:
    return lambda p: with_symbol if "symbol" in p else without


class RestApi:
    """The REST surface of one ``Exchange``."""

    def __init__(
        self,
        ex: Exchange,
        auth: Authenticator,
        weights: WeightLimiter,
        orders: OrderLimiter,
    ) -> None:
        self.ex = ex
        self.auth = auth
        self.weights = weights
        self.order_limits = orders
        self.public = PublicApi(ex, weights, orders)
        self.uids = {c.account: i + 1 for i, c in enumerate(auth.keys.values())}
        pub = self.public
        self.endpoints = [
            Endpoint("GET", "ping", pub.ping, fixed(1)),
            Endpoint("GET", "time", pub.time, fixed(1)),
            Endpoint("GET", "exchangeInfo", pub.exchange_info, fixed(20)),
            Endpoint("GET", "depth", pub.depth, pub.depth_weight),
            Endpoint("GET", "trades", pub.trades, fixed(25)),
            Endpoint("GET", "aggTrades", pub.agg_trades, fixed(4)),
            Endpoint("GET", "klines", pub.klines, fixed(2)),
            Endpoint("GET", "uiKlines", pub.klines, fixed(2)),
            Endpoint("GET", "avgPrice", pub.avg_price, fixed(2)),
            Endpoint("GET", "ticker/24hr", pub.ticker_24hr, pub.ticker_weight),
            Endpoint("GET", "ticker/price", pub.ticker_price, by_symbol(2, 4)),
            Endpoint("GET", "ticker/bookTicker", pub.book_ticker, by_symbol(2, 4)),
            Endpoint("GET", "account", self.account, fixed(20), signed=True),
            Endpoint("POST", "order", self.new_order, fixed(1), signed=True, counts_order=True),
            Endpoint("POST", "order/test", self.test_order, fixed(1), signed=True),
            Endpoint("GET", "order", self.get_order, fixed(4), signed=True),
            Endpoint("DELETE", "order", self.delete_order, fixed(1), signed=True),
            Endpoint("GET", "openOrders", self.open_orders, by_symbol(6, 80), signed=True),
            Endpoint("DELETE", "openOrders", self.cancel_open, fixed(1), signed=True),
            Endpoint("GET", "allOrders", self.all_orders, fixed(20), signed=True),
            Endpoint("GET", "myTrades", self.my_trades, fixed(20), signed=True),
        ]

    def register(self, app: web.Application, prefix: str = "/api/v3/") -> None:
        for ep in self.endpoints:
            app.router.add_route(ep.method, prefix + ep.path, self._make_handler(ep))

    def _make_handler(self, ep: Endpoint) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.dispatch(request, ep)

        return handle

    # -- the one path every request takes -------------------------------------------------
    async def dispatch(self, request: web.Request, ep: Endpoint) -> web.Response:
        ip = request.remote or "unknown"
        headers: dict[str, str] = {}
        try:
            query = request.rel_url.raw_query_string.encode("utf-8", "surrogateescape")
            body = await request.read() if request.method in _BODY_METHODS else b""
            try:
                params = Params(parse_pairs(query) + parse_pairs(body))
            except BinanceError:
                self._charge(ip, 1, headers)
                raise
            try:
                weight = ep.weight(params)
            except BinanceError:
                weight = ep.weight(Params([]))
            self._charge(ip, weight, headers)
            cred = None
            if ep.signed:
                cred = self.auth.verify_rest(
                    request.headers.get("X-MBX-APIKEY"), query, body, params
                )
                params.mark_read("timestamp", "recvWindow")
                if ep.counts_order:
                    self._count_order(cred.account, headers)
            result = ep.handler(params, cred)
            return web.Response(
                text=dumps(result), content_type="application/json", headers=headers
            )
        except _Limited as lim:
            return error_response(lim.error, headers, lim.status)
        except BinanceError as exc:
            return error_response(exc, headers)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.path)
            err = BinanceError("An unknown error occurred while processing the request.", -1000)
            return error_response(err, headers)

    def _charge(self, ip: str, weight: int, headers: dict[str, str]) -> None:
        d = self.weights.charge(ip, weight)
        headers["X-MBX-USED-WEIGHT-1M"] = str(d.used)
        headers["X-MBX-USED-WEIGHT"] = str(d.used)
        if d.status != 200:
            headers["Retry-After"] = str(d.retry_after_s)
            raise _Limited(d)

    def _count_order(self, account: str, headers: dict[str, str]) -> None:
        d = self.order_limits.charge(account)
        n10, nday = self.order_limits.counts(account)
        headers["X-MBX-ORDER-COUNT-10S"] = str(n10)
        headers["X-MBX-ORDER-COUNT-1D"] = str(nday)
        if d.status != 200:
            headers["Retry-After"] = str(d.retry_after_s)
            raise _Limited(d)

    # -- signed endpoints ---------------------------------------------------------------
    @staticmethod
    def _account(cred: Credential | None) -> str:
        assert cred is not None
        return cred.account

    def account(self, p: Params, cred: Credential | None) -> Any:
        omit = p.boolean("omitZeroBalances")
        p.finish()
        account = self._account(cred)
        return account_json(self.ex, account, omit, self.uids.get(account, 0))

    def new_order(self, p: Params, cred: Credential | None) -> Any:
        req, resp = parse_new_order(p, self._account(cred), self.ex)
        return new_order_response(req, self.ex.submit(req), resp)

    def test_order(self, p: Params, cred: Credential | None) -> Any:
        p.boolean("computeCommissionRates")
        req, _ = parse_new_order(p, self._account(cred), self.ex)
        check_only(self.ex, req)
        return {}

    def get_order(self, p: Params, cred: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        hist = self.ex.history.get(self._account(cred))
        if hist is None:
            raise BinanceError("Order does not exist.", -2013)
        return query_order(hist, symbol, p).to_json()

    def delete_order(self, p: Params, cred: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        return cancel_order(self.ex, self._account(cred), symbol, p)

    def open_orders(self, p: Params, cred: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments, required=False)
        p.finish()
        hist = self.ex.history.get(self._account(cred))
        if hist is None:
            return []
        recs = sorted(hist.open.values(), key=lambda r: r.order_id)
        return [r.to_json() for r in recs if symbol is None or r.symbol == symbol]

    def cancel_open(self, p: Params, cred: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        p.finish()
        account = self._account(cred)
        hist = self.ex.history.get(account)
        before = dict(hist.open) if hist is not None else {}
        reports = self.ex.cancel_all(account, symbol)
        return [cancel_response(before.get(r.order_id), r, "") for r in reports]

    def all_orders(self, p: Params, cred: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        from_id = p.integer("orderId", 0)
        start, end = p.integer("startTime"), p.integer("endTime")
        limit = p.limit(500, 1000)
        p.finish()
        hist = self.ex.history.get(self._account(cred))
        if hist is None:
            return []
        recs = [*hist.closed.values(), *hist.open.values()]
        out = sorted(
            (
                r
                for r in recs
                if r.symbol == symbol
                and r.order_id >= (from_id or 0)
                and (start is None or r.time_ns // 1_000_000 >= start)
                and (end is None or r.time_ns // 1_000_000 <= end)
            ),
            key=lambda r: r.order_id,
        )
        out = out[:limit] if from_id or start is not None else out[-limit:]
        return [r.to_json() for r in out]

    def my_trades(self, p: Params, cred: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        order_id = p.integer("orderId")
        start, end = p.integer("startTime"), p.integer("endTime")
        from_id = p.integer("fromId")
        limit = p.limit(500, 1000)
        p.finish()
        if from_id is not None and (start is not None or end is not None):
            raise BinanceError("Combination of optional parameters invalid.", -1128)
        hist = self.ex.history.get(self._account(cred))
        if hist is None:
            return []
        trades = [
            t
            for t in hist.trades
            if t.symbol == symbol
            and (order_id is None or t.order_id == order_id)
            and (from_id is None or t.trade_id >= from_id)
            and (start is None or t.time_ns // 1_000_000 >= start)
            and (end is None or t.time_ns // 1_000_000 <= end)
        ]
        trades.sort(key=lambda t: (t.trade_id, t.is_maker))
        trades = trades[:limit] if from_id is not None or start is not None else trades[-limit:]
        return [t.to_json() for t in trades]


class _Limited(Exception):
    def __init__(self, d: Decision) -> None:
        super().__init__(d.msg)
        self.error = BinanceError(d.msg, d.code)
        self.status = d.status
