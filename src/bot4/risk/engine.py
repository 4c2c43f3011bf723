"""The risk engine: the single entry of the order path.

Strategies hand every order to ``RiskEngine`` (never to the order manager directly);
it runs the pre-trade checks and passes what survives to ``OrderManager``.  A denial is
journaled as an ``OrderDenied`` event with its reason and raises ``RiskDenied``; it
changes no order, position or balance.

Rules that always hold, whatever the profile says:
* reducing risk is always allowed: a reduce-only order, or one that only shrinks an
  existing position, passes every check, in every trading state;
* fail closed: no reference price, a stale one, or an account that cannot be valued
  means no new risk;
* cancels always pass.

The checks are integer arithmetic on cached figures (equity, gross exposure, book
covariance), so the chain costs microseconds; see ``benchmarks/risk.py``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from bot4.core.clock import Clock
from bot4.core.enums import OrderSide, OrderType
from bot4.core.events import Event, OrderDenied, TradingStateChanged
from bot4.core.numbers import MONEY_SCALE, SCALE, to_raw
from bot4.core.order import Order
from bot4.oms.manager import OrderManager
from bot4.oms.requests import AnyOrderRequest, RawOrderRequest
from bot4.risk.denials import DenialReason, RiskDenied
from bot4.risk.kill_switch import KillSwitch
from bot4.risk.market import MarketState
from bot4.risk.profile import TRADING_STATES, RiskProfile

R = DenialReason
DAY_NS = 86_400 * 10**9
Z95 = 1.6448536269514722  # scipy.stats.norm.ppf(0.95)


def _frac(value: Decimal) -> tuple[int, int]:
    return value.as_integer_ratio()


class RiskEngine:
    def __init__(
        self, om: OrderManager, profile: RiskProfile | None = None, clock: Clock | None = None
    ) -> None:
        self.om = om
        self.state = om.state
        self.clock: Clock = clock if clock is not None else om.clock
        self.profile = profile if profile is not None else RiskProfile.default()
        lim = self.profile.limits
        self.quote = self.profile.quote_currency
        self.market = MarketState(lim.sample_interval_seconds * 10**9, lim.correlation_window)
        self._pos_frac = _frac(lim.max_position_pct_equity)
        self._band_frac = _frac(lim.price_band_pct)
        self._lev_frac = _frac(lim.max_leverage)
        self._daily_frac = _frac(lim.daily_loss_limit_pct)
        self._max_notional = int(lim.max_order_notional * MONEY_SCALE)
        self._max_age_ns = lim.max_data_age_seconds * 10**9
        self._window_ns = lim.submit_window_seconds * 10**9
        self._corr_limit = float(lim.correlation_limit)
        self._var_pct = float(lim.max_var_pct_equity)
        self._require_stop = lim.require_stop_loss
        self._max_open_orders = lim.max_open_orders
        self._max_rate = lim.max_orders_per_window
        self._stats_on = self._corr_limit < 1 or self._var_pct > 0
        self._submits: deque[int] = deque()
        self._holds: set[str] = set()
        self.scale: tuple[int, int] = (1, 1)  # share of the size limits (staged re-enable)
        self._equity: int | None = None
        self._equity_ok: bool | None = None
        # (quote cash, [(symbol pricing the asset or None, amount)], symbols whose price
        # moves equity): rebuilt after a fill or balance change, read on every tick.
        self._valuation: tuple[int, list[tuple[str | None, int]], frozenset[str]] | None = None
        self._gross: int | None = None
        self._book: BookVectors | None = None
        self._exposed: set[str] | None = None  # symbols with a position, until a fill
        self._book_valid = False
        self._symbol_figures: dict[str, tuple[float | None, float, float, float]] = {}
        self.day = -1
        self.day_start_equity = 0
        # The current day as [start, end) in ns: a comparison per price instead of a
        # division of a 61-bit timestamp (empty until the first roll).
        self._day_lo = 0
        self._day_hi = 0
        self.denied = 0
        # How to value each asset: the instrument that quotes it in the quote currency.
        self._symbol_of = {
            i.base: i.symbol for i in self.state.instruments.values() if i.quote == self.quote
        }
        self._base_of = {i.symbol: i.base for i in self.state.instruments.values()}
        self.kill_switch = KillSwitch(self, self.profile.kill_switch, self.profile.stages)
        om.subscribe(self._on_event, ("OrderFilled", "BalanceAdjusted", "OrderCanceled"))

    # -- holds ----------------------------------------------------------------------------
    def hold(self, reason: str) -> None:
        """Deny every order that adds risk until ``release`` (e.g. while the venue
        adapter reconciles after a reconnect); reducing orders and cancels still pass.
        Not journaled: it is a transient condition of this process, not a fact."""
        self._holds.add(reason)

    def release(self, reason: str) -> None:
        self._holds.discard(reason)

    @property
    def held(self) -> bool:
        return bool(self._holds)

    # -- state --------------------------------------------------------------------------
    @property
    def trading_state(self) -> str:
        return self.state.trading_state

    def set_trading_state(self, trading_state: str, reason: str) -> None:
        if trading_state not in TRADING_STATES:
            raise ValueError(f"trading state must be one of {TRADING_STATES}")
        if trading_state != self.state.trading_state:
            self.om.record(TradingStateChanged, trading_state=trading_state, reason=reason)

    def _on_event(self, event: Event) -> None:
        if event.kind in ("OrderFilled", "BalanceAdjusted"):
            self._valuation = None
            self._equity = None
            self._gross = None
            self._book_valid = False
            self._exposed = None
            if event.kind == "OrderFilled":
                self.kill_switch.evaluate(self.clock.now_ns())
        elif event.kind == "OrderCanceled" and self.kill_switch.pending_flatten:
            self.kill_switch.retry_flatten()

    def heartbeat(self) -> None:
        """Re-evaluate the kill switch on the clock alone, stale data included: call it
        from a timer (price updates only re-check what a price can change)."""
        self.kill_switch.evaluate(self.clock.now_ns(), stale=True)

    # -- market data --------------------------------------------------------------------
    def update_price(
        self, symbol: str, price: Decimal | int | str, ts_ns: int | None = None
    ) -> None:
        """A reference price (last trade, mid or bar close) for checks and valuation."""
        raw = to_raw(price, "price")
        if raw <= 0:
            from bot4.core.errors import ValidationError

            raise ValidationError("price", "must be > 0", price)
        self.update_price_raw(symbol, raw, self.clock.now_ns() if ts_ns is None else ts_ns)

    def update_price_raw(self, symbol: str, price_raw: int, ts_ns: int) -> None:
        """The per-tick path: only what the new price can change is recomputed (a price
        of a coin the account does not hold moves neither equity nor exposure)."""
        sampled = self.market.update(symbol, price_raw, ts_ns)
        self.om.reference_prices[symbol] = price_raw
        valuation = self._valuation
        if valuation is None:
            valuation = self._valuation = self._build_valuation()
        if symbol in valuation[2] or self._equity_ok is False:
            self._gross = None
            self._book_valid = False
            assets = valuation[1]
            if len(assets) == 1 and assets[0][0] == symbol:  # one coin held: value it here
                equity = self._equity = valuation[0] + assets[0][1] * price_raw // SCALE
                self._equity_ok = True
                self.kill_switch.evaluate(ts_ns, False, equity)
            else:
                self._equity = None
                self.kill_switch.evaluate(ts_ns)
        elif sampled:
            self._book_valid = False
        elif self.kill_switch.reset_at is not None:
            self.kill_switch.evaluate(ts_ns)

    def _build_valuation(self) -> tuple[int, list[tuple[str | None, int]], frozenset[str]]:
        cash = 0
        assets: list[tuple[str | None, int]] = []
        moving: set[str] = set()
        for asset, bal in self.state.account.balances.items():
            amount = bal.free + bal.locked
            if asset == self.quote:
                cash += amount
            elif amount:
                symbol = self._symbol_of.get(asset)
                assets.append((symbol, amount))
                if symbol is not None:
                    moving.add(symbol)
        for sym, pos in self.state.positions.items():
            if pos.qty_raw:
                moving.add(sym)
        return cash, assets, frozenset(moving)

    # -- valuation ----------------------------------------------------------------------
    def equity_money(self) -> int | None:
        """Account value in the quote currency at the last prices; None if some asset
        has no price (then no new risk is taken)."""
        if self._equity is None:
            valuation = self._valuation
            if valuation is None:
                valuation = self._valuation = self._build_valuation()
            total, assets, _ = valuation
            ok = True
            prices = self.market.last_prices
            for symbol, amount in assets:
                price = prices.get(symbol) if symbol is not None else None
                if price is None:
                    ok = False
                    break
                total += amount * price // SCALE
            self._equity = total if ok else 0
            self._equity_ok = ok
        return self._equity if self._equity_ok else None

    def gross_exposure_money(self) -> int:
        if self._gross is None:
            prices = self.market.last_prices
            gross = 0
            for s, p in self.state.positions.items():  # a loop: no generator per tick
                if p.qty_raw:
                    gross += abs(p.qty_raw) * prices.get(s, 0)
            self._gross = gross
        return self._gross

    def roll_day(self, now: int, equity: int) -> None:
        day = now // DAY_NS
        self._day_lo, self._day_hi = day * DAY_NS, (day + 1) * DAY_NS
        if day != self.day:
            self.day = day
            self.day_start_equity = equity

    # -- the gateway --------------------------------------------------------------------
    def submit(self, request: AnyOrderRequest, ts: int | None = None) -> Order:
        req = request.raw()
        self._check(req, has_stop=False, n_orders=1)
        order = self.om.submit(req, ts)
        self._submits.append(self.clock.now_ns())
        return order

    def submit_bracket(
        self,
        entry: AnyOrderRequest,
        stop_loss: Decimal | int | str | None = None,
        take_profit: Decimal | int | str | None = None,
        ts: int | None = None,
        stop_loss_pct: Decimal | int | str | None = None,
        take_profit_pct: Decimal | int | str | None = None,
    ) -> list[Order]:
        """An entry with its protective stop (and optional take-profit); see
        ``OrderManager.submit_bracket``.  The stop satisfies the stop-loss rule."""
        req = entry.raw()
        self._check(req, has_stop=True, n_orders=1)
        orders = self.om.submit_bracket(
            req,
            stop_loss,
            take_profit,
            ts=ts,
            stop_loss_pct=stop_loss_pct,
            take_profit_pct=take_profit_pct,
        )
        self._submits.append(self.clock.now_ns())
        return orders

    def submit_oco(
        self, first: AnyOrderRequest, second: AnyOrderRequest, ts: int | None = None
    ) -> list[Order]:
        has_stop = first.order_type.has_trigger or second.order_type.has_trigger
        a, b = first.raw(), second.raw()
        self._check(a, has_stop=has_stop, n_orders=2)
        orders = self.om.submit_oco(a, b, ts=ts)
        self._submits.append(self.clock.now_ns())
        return orders

    def cancel(self, client_order_id: str, ts: int | None = None) -> None:
        """Cancels always pass: they only reduce risk."""
        self.om.cancel(client_order_id, ts=ts)

    def close_position(self, symbol: str) -> Order | None:
        """A reduce-only market order for the whole position (passes in any state)."""
        pos = self.state.positions.get(symbol)
        if pos is None or pos.qty_raw == 0:
            return None
        side = OrderSide.SELL if pos.qty_raw > 0 else OrderSide.BUY
        qty = self.state.instruments[symbol].round_qty(abs(pos.qty_raw))
        if qty == 0:
            return None
        return self.submit(RawOrderRequest(symbol, side, OrderType.MARKET, qty, reduce_only=True))

    # -- the checks ---------------------------------------------------------------------
    def _deny(
        self, req: RawOrderRequest, qty: int, price: int, reason: DenialReason, msg: str
    ) -> None:
        self.denied += 1
        self.om.record(
            OrderDenied,
            symbol=req.symbol,
            side=req.side,
            order_type=req.order_type,
            quantity_raw=qty,
            price_raw=price,
            reason=reason.value,
            message=msg,
            client_order_id=req.client_order_id or "",
        )
        raise RiskDenied(reason, msg)

    def _check(self, req: RawOrderRequest, has_stop: bool, n_orders: int) -> None:
        """The chain, cheapest and most decisive first; integer arithmetic throughout
        (figures in money units, 1e-18), floats only for the book statistics."""
        qty = req.quantity_raw
        price = req.price_raw or 0
        signed = qty if req.side is OrderSide.BUY else -qty
        state = self.state
        pos = state.positions.get(req.symbol)
        pos_qty = 0 if pos is None else pos.qty_raw
        if req.reduce_only or (pos_qty * signed < 0 and qty <= abs(pos_qty)):
            return  # reducing risk is always allowed
        if self._holds:
            self._deny(
                req,
                qty,
                price,
                R.RECONCILING,
                f"new risk is on hold: {', '.join(sorted(self._holds))}",
            )
        trading = state.trading_state
        if trading != "ACTIVE":
            if trading == "HALTED":
                self._deny(
                    req, qty, price, R.TRADING_HALTED, "trading is halted: only reducing orders"
                )
            self._deny(
                req, qty, price, R.REDUCING_ONLY, "trading state REDUCING: only reducing orders"
            )
        if self._require_stop and not has_stop:
            self._deny(
                req,
                qty,
                price,
                R.STOP_LOSS_REQUIRED,
                "an order that opens or increases a position needs a linked stop-loss",
            )
        market = self.market
        ref = market.last_prices.get(req.symbol)
        if ref is None:
            self._deny(
                req, qty, price, R.NO_REFERENCE_PRICE, f"no reference price for {req.symbol}"
            )
            return
        now = self.clock.now_ns()
        age = now - market.last_update_ns[req.symbol]
        if age > self._max_age_ns:
            self._deny(
                req,
                qty,
                price,
                R.MARKET_DATA_STALE,
                f"reference price is {age / 1e9:.1f} s old (max {self._max_age_ns // 10**9} s)",
            )
        num, den = self._band_frac
        if price and abs(price - ref) * den > ref * num:
            self._deny(
                req,
                qty,
                price,
                R.PRICE_OUTSIDE_BAND,
                f"price {price / SCALE} is more than {num}/{den} away from {ref / SCALE}",
            )
        s_num, s_den = self.scale
        notional = qty * (price or ref)
        if notional * s_den > self._max_notional * s_num:
            self._deny(
                req,
                qty,
                price,
                R.NOTIONAL_EXCEEDS_MAX_PER_ORDER,
                f"notional {notional / MONEY_SCALE:.2f} above "
                f"{self._max_notional / MONEY_SCALE:.2f} x {s_num}/{s_den}",
            )
        open_orders = len(state.open_orders)
        if open_orders + n_orders > self._max_open_orders:
            self._deny(
                req,
                qty,
                price,
                R.MAX_OPEN_ORDERS_EXCEEDED,
                f"{open_orders} open orders (max {self._max_open_orders})",
            )
        submits = self._submits
        horizon = now - self._window_ns
        while submits and submits[0] <= horizon:
            submits.popleft()
        if len(submits) >= self._max_rate:
            self._deny(
                req,
                qty,
                price,
                R.SUBMIT_RATE_EXCEEDED,
                f"{len(submits)} orders in {self._window_ns // 10**9} s (max {self._max_rate})",
            )
        equity = (
            self._equity if self._equity is not None and self._equity_ok else self.equity_money()
        )
        if equity is None or equity <= 0:
            self._deny(req, qty, price, R.NO_EQUITY, "the account cannot be valued or is empty")
            return
        num, den = self._pos_frac
        new_pos = abs(pos_qty + signed) * ref
        if new_pos * den * s_den > equity * num * s_num:
            self._deny(
                req,
                qty,
                price,
                R.POSITION_SIZE_EXCEEDS_LIMIT,
                f"position {new_pos / MONEY_SCALE:.2f} above {num}/{den} x {s_num}/{s_den}"
                f" of equity {equity / MONEY_SCALE:.2f}",
            )
        num, den = self._lev_frac
        gross = (
            self._gross if self._gross is not None else self.gross_exposure_money()
        ) + qty * ref
        if gross * den > equity * num:
            self._deny(
                req,
                qty,
                price,
                R.LEVERAGE_EXCEEDS_MAX,
                f"gross exposure {gross / equity:.3f} x equity (max {num}/{den})",
            )
        if not self._day_lo <= now < self._day_hi:
            self.roll_day(now, equity)
        num, den = self._daily_frac
        start = self.day_start_equity
        if start > 0 and (start - equity) * den >= start * num:
            self._deny(
                req,
                qty,
                price,
                R.DAILY_LOSS_LIMIT_REACHED,
                f"equity {equity / MONEY_SCALE:.2f} is {num}/{den} or more"
                f" below the day's start {start / MONEY_SCALE:.2f}",
            )
        if self._stats_on:
            corr, var_after = self._book_stats(req.symbol, signed * ref / MONEY_SCALE)
            if corr is not None and corr > self._corr_limit:
                self._deny(
                    req,
                    qty,
                    price,
                    R.CORRELATION_EXCEEDS_LIMIT,
                    f"returns correlate {corr:.3f} with the book (max {self._corr_limit})",
                )
            if (
                self._var_pct > 0
                and var_after is not None
                and var_after * MONEY_SCALE > (self._var_pct * equity)
            ):
                self._deny(
                    req,
                    qty,
                    price,
                    R.VAR_EXCEEDS_LIMIT,
                    f"95% VaR {var_after:.2f} above {self._var_pct} of equity",
                )

    # -- book statistics ----------------------------------------------------------------
    def _book_vectors(self) -> BookVectors | None:
        """Covariance of the sampled returns with the book's position values, cached
        until a fill, a price or a new sample changes them."""
        if not self._book_valid:
            self._book_valid = True
            self._book = None
            self._symbol_figures.clear()
            symbols, cov = self.market.covariance()
            if symbols:
                prices = self.market.last_prices
                w = []
                for s in symbols:
                    p = self.state.positions.get(s)
                    w.append(p.qty_raw * prices[s] / MONEY_SCALE if p is not None else 0.0)
                sw = [float(x) for x in cov @ w]
                wsw = float(sum(a * b for a, b in zip(w, sw, strict=True)))
                self._book = BookVectors(
                    symbols, w, sw, wsw, [float(cov[i, i]) for i in range(len(symbols))]
                )
        return self._book

    def _book_stats(self, symbol: str, delta_value: float) -> tuple[float | None, float | None]:
        """(correlation of the new position's returns with the rest of the book,
        95 % parametric VaR of the book with the order), each None when unknown.
        O(1) from per-symbol figures cached with the book: the order changes one
        coordinate of w.  A book with no other position needs no covariance matrix:
        no correlation to measure, and the VaR is the one symbol's rolling variance."""
        exposed = self._exposed
        if exposed is None:
            exposed = self._exposed = {s for s, p in self.state.positions.items() if p.qty_raw}
        if not exposed or (len(exposed) == 1 and symbol in exposed):
            var_k = self.market.variance(symbol)
            if var_k is None:
                return None, None
            pos = self.state.positions.get(symbol)
            w = pos.qty_raw * self.market.last_prices[symbol] / MONEY_SCALE if pos else 0.0
            return None, Z95 * abs(w + delta_value) * math.sqrt(var_k)
        book = self._book_vectors()
        if book is None:
            return None, None
        figures = self._symbol_figures.get(symbol)
        if figures is None:
            if symbol not in book.symbols:
                return None, None
            k = book.symbols.index(symbol)
            var_k = book.diag[k]
            wk = book.w[k]
            rest_cov_k = book.sw[k] - var_k * wk  # Cov(r_k, rest of the book)
            rest_var = book.wsw - 2 * wk * book.sw[k] + wk * wk * var_k
            corr = None
            if (
                self.market.samples(symbol) >= self.profile.limits.correlation_min_samples
                and rest_var > 1e-18
                and var_k > 0
            ):
                corr = rest_cov_k / math.sqrt(var_k * rest_var)
            figures = self._symbol_figures[symbol] = (corr, book.sw[k], var_k, book.wsw)
        corr, sw_k, var_k, wsw = figures
        if corr is not None and delta_value < 0:
            corr = -corr
        after = wsw + 2 * delta_value * sw_k + delta_value * delta_value * var_k
        return corr, Z95 * math.sqrt(max(after, 0.0))


@dataclass(frozen=True, slots=True)
class BookVectors:
    symbols: list[str]
    w: list[float]  # position value per symbol (quote units)
    sw: list[float]  # Sigma w
    wsw: float  # w' Sigma w: variance of the book's return per sample interval
    diag: list[float]  # Sigma_kk
