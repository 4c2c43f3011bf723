"""Public REST endpoints: exchangeInfo, depth, trades, klines, tickers.

Shapes and field names follow Binance's spot API; decimals are strings with eight or
more fraction digits (``formats``).  Depth is read from the engine's book at the
symbol's current update id, which is what makes it bridge with the diff stream.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

from bot4.core.numbers import money_from_raw
from bot4.server.auth import Credential
from bot4.server.exchange import Exchange
from bot4.server.formats import fmt_money, fmt_raw, ms
from bot4.server.limits import OrderLimiter, WeightLimiter
from bot4.server.market_data import (
    INTERVALS,
    K_CLOSE,
    K_COUNT,
    K_FIRST,
    K_HIGH,
    K_LAST,
    K_LOW,
    K_OPEN,
    K_OPEN_MS,
    K_QVOL,
    K_TB_QUOTE,
    K_TB_VOL,
    K_VOL,
    bucket_end,
)
from bot4.server.params import SYMBOL_RE, Params, illegal
from bot4.sim.errors import BinanceError

ORDER_TYPES: Final = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]
STP_MODES: Final = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"]
_SYMBOLS_RANGE: Final = r'^\["[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}]$'


def _pct(num: Decimal, den: Decimal) -> str:
    return f"{(num / den * 100):.3f}" if den else "0.000"


class PublicApi:
    def __init__(self, ex: Exchange, weights: WeightLimiter, orders: OrderLimiter) -> None:
        self.ex = ex
        self.weights = weights
        self.orders = orders

    # -- helpers ---------------------------------------------------------------------------
    def _symbols(self, p: Params) -> list[str]:
        """``symbol`` or ``symbols`` (a JSON array) or, if neither, every symbol."""
        one = p.symbol(self.ex.instruments, required=False)
        many = p.get("symbols")
        if one is not None and many is not None:
            raise BinanceError("Combination of optional parameters invalid.", -1128)
        if one is not None:
            return [one]
        if many is None:
            return list(self.ex.instruments)
        try:
            names = json.loads(many)
        except ValueError:
            raise illegal("symbols", _SYMBOLS_RANGE) from None
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and SYMBOL_RE.fullmatch(n) for n in names)
        ):
            raise illegal("symbols", _SYMBOLS_RANGE)
        if any(n not in self.ex.instruments for n in names):
            raise BinanceError("Invalid symbol.", -1121)
        return list(dict.fromkeys(names))

    @staticmethod
    def depth_weight(p: Params) -> int:
        n = p.limit(100, 5000)
        return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250

    @staticmethod
    def ticker_weight(p: Params) -> int:
        if "symbol" in p:
            return 2
        return 80 if "symbols" not in p else 40

    # -- endpoints ---------------------------------------------------------------------------
    def ping(self, p: Params, _c: Credential | None) -> Any:
        p.finish()
        return {}

    def time(self, p: Params, _c: Credential | None) -> Any:
        p.finish()
        return {"serverTime": self.ex.now_ms()}

    def exchange_info(self, p: Params, _c: Credential | None) -> Any:
        names = self._symbols(p)
        for extra in ("permissions", "showPermissionSets", "symbolStatus"):
            p.get(extra)
        p.finish()
        limit = self.weights.limit
        return {
            "timezone": "UTC",
            "serverTime": self.ex.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": limit,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": self.orders.per_10s,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "DAY",
                    "intervalNum": 1,
                    "limit": self.orders.per_day,
                },
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(n) for n in names],
        }

    def _symbol_info(self, name: str) -> dict[str, Any]:
        inst = self.ex.instruments[name]
        lot = {
            "minQty": fmt_raw(inst.min_qty_raw),
            "maxQty": fmt_raw(inst.max_qty_raw),
            "stepSize": fmt_raw(inst.step_raw),
        }
        return {
            "symbol": name,
            "status": "TRADING",
            "baseAsset": inst.base,
            "baseAssetPrecision": 8,
            "quoteAsset": inst.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ORDER_TYPES,
            "icebergAllowed": True,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt_raw(inst.tick_raw),
                    "maxPrice": "0.00000000",
                    "tickSize": fmt_raw(inst.tick_raw),
                },
                {"filterType": "LOT_SIZE", **lot},
                {"filterType": "ICEBERG_PARTS", "limit": self.ex.engine.iceberg_parts},
                {"filterType": "MARKET_LOT_SIZE", **lot},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": str(inst.percent_up),
                    "multiplierDown": str(inst.percent_down),
                    "avgPriceMins": 0,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt_money(inst.min_notional_raw),
                    "applyMinToMarket": True,
                    "maxNotional": fmt_money(inst.max_notional_raw),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 0,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": STP_MODES,
        }

    def depth(self, p: Params, _c: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        limit = p.limit(100, 5000)
        p.finish()
        uid, bids, asks = self.ex.depth_snapshot(symbol, limit)
        return {
            "lastUpdateId": uid,
            "bids": [[fmt_raw(pr), fmt_raw(q)] for pr, q in bids],
            "asks": [[fmt_raw(pr), fmt_raw(q)] for pr, q in asks],
        }

    def trades(self, p: Params, _c: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        limit = p.limit(500, 1000)
        p.finish()
        recent = list(self.ex.market[symbol].trades)[-limit:]
        return [
            {
                "id": t.trade_id,
                "price": fmt_raw(t.price_raw),
                "qty": fmt_raw(t.qty_raw),
                "quoteQty": fmt_money(t.quote_money),
                "time": ms(t.ts),
                "isBuyerMaker": t.buyer_is_maker,
                "isBestMatch": True,
            }
            for t in recent
        ]

    def agg_trades(self, p: Params, _c: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        from_id = p.integer("fromId")
        start, end = p.integer("startTime"), p.integer("endTime")
        limit = p.limit(500, 1000)
        p.finish()
        out = [
            t
            for t in self.ex.market[symbol].trades
            if (from_id is None or t.trade_id >= from_id)
            and (start is None or ms(t.ts) >= start)
            and (end is None or ms(t.ts) <= end)
        ]
        out = out[:limit] if from_id is not None or start is not None else out[-limit:]
        return [
            {
                "a": t.trade_id,
                "p": fmt_raw(t.price_raw),
                "q": fmt_raw(t.qty_raw),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": ms(t.ts),
                "m": t.buyer_is_maker,
                "M": True,
            }
            for t in out
        ]

    def klines(self, p: Params, _c: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        interval = p.require("interval")
        if interval not in INTERVALS:
            raise BinanceError("Invalid interval.", -1120)
        start, end = p.integer("startTime"), p.integer("endTime")
        zone = p.get("timeZone")
        if zone not in (None, "0", "+0", "0:00", "+00:00"):
            raise BinanceError("Invalid timeZone: only UTC (0) is supported here.", -1100)
        limit = p.limit(500, 1000)
        p.finish()
        now = self.ex.now_ms()
        rows = self.ex.market[symbol].klines(interval, start, end, limit, now)
        return [
            [
                c[K_OPEN_MS],
                fmt_raw(c[K_OPEN]),
                fmt_raw(c[K_HIGH]),
                fmt_raw(c[K_LOW]),
                fmt_raw(c[K_CLOSE]),
                fmt_raw(c[K_VOL]),
                bucket_end(c[K_OPEN_MS], interval),
                fmt_money(c[K_QVOL]),
                c[K_COUNT],
                fmt_raw(c[K_TB_VOL]),
                fmt_money(c[K_TB_QUOTE]),
                "0",
            ]
            for c in rows
        ]

    def avg_price(self, p: Params, _c: Credential | None) -> Any:
        symbol = p.symbol(self.ex.instruments)
        assert symbol is not None
        p.finish()
        now = self.ex.now_ms()
        w = self.ex.market[symbol].window(now, 5 * 60_000)
        price = "0.00000000"
        if w is not None and w[K_VOL]:
            avg = money_from_raw(w[K_QVOL]) / money_from_raw(w[K_VOL] * 10**9)
            price = f"{avg:.8f}"
        return {"mins": 5, "price": price, "closeTime": now}

    def ticker_24hr(self, p: Params, _c: Credential | None) -> Any:
        names = self._symbols(p)
        single = "symbol" in p
        kind = p.get("type") or "FULL"
        if kind not in ("FULL", "MINI"):
            raise BinanceError("Invalid type.", -1100)
        p.finish()
        out = [self._ticker(n, kind == "MINI") for n in names]
        return out[0] if single else out

    def _ticker(self, symbol: str, mini: bool) -> dict[str, Any]:
        now = self.ex.now_ms()
        m = self.ex.market[symbol]
        w = m.window(now)
        last = self.ex.engine.last_price(symbol)
        if w is None:
            prev = open_ = high = low = last
            vol = quote = count = 0
            first_id = last_id = -1
        else:
            prev, open_, high, low = w[K_OPEN_MS] or w[K_OPEN], w[K_OPEN], w[K_HIGH], w[K_LOW]
            vol, quote, count, first_id, last_id = (
                w[K_VOL],
                w[K_QVOL],
                w[K_COUNT],
                w[K_FIRST],
                w[K_LAST],
            )
        out: dict[str, Any] = {
            "symbol": symbol,
            "openPrice": fmt_raw(open_),
            "highPrice": fmt_raw(high),
            "lowPrice": fmt_raw(low),
            "lastPrice": fmt_raw(last),
            "volume": fmt_raw(vol),
            "quoteVolume": fmt_money(quote),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": first_id,
            "lastId": last_id,
            "count": count,
        }
        if mini:
            return out
        book = self.ex.engine.book(symbol)
        change = last - open_
        wavg = money_from_raw(quote) / money_from_raw(vol * 10**9) if vol else Decimal(0)
        out.update(
            priceChange=fmt_raw(change),
            priceChangePercent=_pct(Decimal(change), Decimal(open_)),
            weightedAvgPrice=f"{wavg:.8f}",
            prevClosePrice=fmt_raw(prev),
            lastQty=fmt_raw(m.last_qty),
            bidPrice=fmt_raw(book.best_bid() or 0),
            bidQty=fmt_raw(book.best_bid_qty()),
            askPrice=fmt_raw(book.best_ask() or 0),
            askQty=fmt_raw(book.best_ask_qty()),
        )
        return out

    def ticker_price(self, p: Params, _c: Credential | None) -> Any:
        names = self._symbols(p)
        single = "symbol" in p
        p.finish()
        out = [{"symbol": n, "price": fmt_raw(self.ex.engine.last_price(n))} for n in names]
        return out[0] if single else out

    def book_ticker(self, p: Params, _c: Credential | None) -> Any:
        names = self._symbols(p)
        single = "symbol" in p
        p.finish()
        out = []
        for n in names:
            b = self.ex.engine.book(n)
            out.append(
                {
                    "symbol": n,
                    "bidPrice": fmt_raw(b.best_bid() or 0),
                    "bidQty": fmt_raw(b.best_bid_qty()),
                    "askPrice": fmt_raw(b.best_ask() or 0),
                    "askQty": fmt_raw(b.best_ask_qty()),
                }
            )
        return out[0] if single else out
