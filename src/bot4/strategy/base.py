"""The Strategy base class: what a user writes, the same in backtest, paper and live.

A strategy declares its parameters as annotated class attributes::

    class SmaCross(Strategy):
        fast: int = 10
        slow: int = 30

reacts to data (``on_bar``, ``on_trade``, ``on_quote``, ``on_book``) and to its orders
(``on_order``, ``on_fill``, ``on_denied``), and acts through ``buy``/``sell``/
``close_position``/``cancel``.  Every action goes to the risk engine -- there is no
other way to the order manager -- so a denied order returns ``None`` (and calls
``on_denied``) instead of reaching the venue.

Prices and sizes may be given as floats here, for convenience: they are converted once,
explicitly, to exact integers rounded to the instrument's grid on the safe side (a
buy's limit down, a sell's up; a quantity down).  A float means the decimal it prints
as (``0.3`` is 3/10, not the binary fraction below it).  Nothing past this point sees
a float.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from bot4.core.clock import Clock
from bot4.core.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from bot4.core.errors import InsufficientBalance, ValidationError
from bot4.core.events import Event
from bot4.core.instrument import Instrument
from bot4.core.numbers import SCALE, from_raw
from bot4.core.order import Order
from bot4.oms.requests import RawOrderRequest
from bot4.risk.denials import RiskDenied
from bot4.risk.engine import RiskEngine
from bot4.strategy.indicators import EMA, RSI, SMA, Indicator
from bot4.strategy.positions import PositionChanged

Number = Decimal | int | float | str
IndicatorT = TypeVar("IndicatorT", bound=Indicator)


@dataclass(slots=True)
class Bar:
    """One bar of one symbol.  The engine reuses the object for the next bar: copy the
    fields you want to keep, not the object."""

    symbol: str
    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Strategy:
    """Subclass it; see the module docstring."""

    params: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hints = typing.get_type_hints(cls)
        declared: dict[str, type] = {}
        for klass in reversed(cls.__mro__):
            for name in getattr(klass, "__annotations__", {}):
                hint = hints.get(name)
                if name.startswith("_") or name == "params" or hint is None:
                    continue
                if hint in (int, float, bool, str, Decimal):
                    declared[name] = hint
        cls.params = declared

    def __init__(self, **params: Any) -> None:
        for name, value in params.items():
            if name not in self.params:
                raise ValidationError(name, f"unknown parameter of {type(self).__name__}", value)
            setattr(self, name, _coerce(name, self.params[name], value))
        self._ctx: StrategyContext | None = None
        self._indicators: list[tuple[str, Indicator]] = []

    # -- wiring (by the engine) -----------------------------------------------------------
    def _bind(self, ctx: StrategyContext) -> None:
        self._ctx = ctx

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise RuntimeError("the strategy is not attached to an engine yet")
        return self._ctx

    def parameters(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.params}

    # -- lifecycle and handlers (override what you need) ----------------------------------
    def on_start(self) -> None: ...

    def on_stop(self) -> None: ...

    def on_bar(self, bar: Bar) -> None: ...

    def on_trade(self, trade: Any) -> None: ...

    def on_quote(self, quote: Any) -> None: ...

    def on_book(self, book: Any) -> None: ...

    def on_order(self, order: Order) -> None: ...

    def on_fill(self, order: Order, event: Event) -> None: ...

    def on_position(self, change: PositionChanged) -> None:
        """After a fill changed a position (opened, increased, reduced, closed, flipped)."""

    def on_denied(self, denial: RiskDenied) -> None: ...

    def on_timer(self, name: str) -> None: ...

    # -- indicators -----------------------------------------------------------------------
    def sma(self, period: int, symbol: str | None = None) -> SMA:
        """A simple moving average of ``symbol``'s closes, updated before each
        ``on_bar`` of that symbol."""
        return self._register(SMA(period), symbol)

    def ema(self, period: int, symbol: str | None = None) -> EMA:
        return self._register(EMA(period), symbol)

    def rsi(self, period: int = 14, symbol: str | None = None) -> RSI:
        return self._register(RSI(period), symbol)

    def _register(self, ind: IndicatorT, symbol: str | None) -> IndicatorT:
        self._indicators.append((symbol or self.ctx.default_symbol, ind))
        return ind

    # -- state ----------------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        return self.ctx.clock.now_ns()

    def position(self, symbol: str | None = None) -> Decimal:
        pos = self.ctx.risk.state.positions.get(symbol or self.ctx.default_symbol)
        return from_raw(pos.qty_raw) if pos is not None else Decimal(0)

    def is_flat(self, symbol: str | None = None) -> bool:
        pos = self.ctx.risk.state.positions.get(symbol or self.ctx.default_symbol)
        return pos is None or pos.qty_raw == 0

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        orders = self.ctx.risk.state.open_orders.values()
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def set_timer(self, name: str, interval_ns: int) -> None:
        """``on_timer(name)`` every ``interval_ns`` of the engine's clock."""
        self.ctx.set_timer(name, interval_ns)

    # -- actions --------------------------------------------------------------------------
    def buy(self, qty: Number, **kwargs: Any) -> list[Order] | Order | None:
        return self.order(OrderSide.BUY, qty, **kwargs)

    def sell(self, qty: Number, **kwargs: Any) -> list[Order] | Order | None:
        return self.order(OrderSide.SELL, qty, **kwargs)

    def order(
        self,
        side: OrderSide,
        qty: Number,
        *,
        symbol: str | None = None,
        limit: Number | None = None,
        stop: Number | None = None,
        stop_loss: Number | None = None,
        stop_loss_pct: Number | None = None,
        take_profit: Number | None = None,
        take_profit_pct: Number | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        client_order_id: str | None = None,
    ) -> list[Order] | Order | None:
        """Place an order through the risk engine.  With ``stop_loss``/``stop_loss_pct``
        (and optionally a take-profit) it is a bracket: the exits are released with the
        entry's fills.  Returns the order(s), or None if the risk engine denied it."""
        ctx = self.ctx
        sym = symbol or ctx.default_symbol
        inst = ctx.instrument(sym)
        if limit is not None and stop is not None:
            otype = OrderType.STOP_LIMIT
        elif stop is not None:
            otype = OrderType.STOP_MARKET
        elif limit is not None:
            otype = OrderType.LIMIT
        else:
            otype = OrderType.MARKET
        tick = inst.tick_raw
        req = RawOrderRequest(
            sym,
            side,
            otype,
            _on_grid(qty, "qty", inst.step_raw, False),
            _on_grid(limit, "limit", tick, side is OrderSide.SELL) if limit is not None else None,
            _on_grid(stop, "stop", tick, side is OrderSide.BUY) if stop is not None else None,
            time_in_force,
            post_only,
            reduce_only,
            None,
            client_order_id,
        )
        try:
            if stop_loss is not None or stop_loss_pct is not None:
                sell = side is OrderSide.SELL
                sl = (
                    from_raw(_on_grid(stop_loss, "stop_loss", tick, sell))
                    if stop_loss is not None
                    else None
                )
                tp = (
                    from_raw(_on_grid(take_profit, "take_profit", tick, not sell))
                    if take_profit is not None
                    else None
                )
                return ctx.risk.submit_bracket(
                    req,
                    sl,
                    tp,
                    stop_loss_pct=_dec(stop_loss_pct, "stop_loss_pct")
                    if stop_loss_pct is not None
                    else None,
                    take_profit_pct=(
                        _dec(take_profit_pct, "take_profit_pct")
                        if take_profit_pct is not None
                        else None
                    ),
                )
            return ctx.risk.submit(req)
        except RiskDenied as denial:
            self.on_denied(denial)
            return None
        finally:
            ctx.after_action()

    def cancel(self, order: Order | str) -> None:
        cid = order if isinstance(order, str) else order.client_order_id
        try:
            self.ctx.risk.cancel(cid)
        finally:
            self.ctx.after_action()

    def close_position(self, symbol: str | None = None) -> Order | None:
        """Cancel the symbol's working orders, then close the position at market
        (reduce-only).  If its exits still hold the coins until their cancel is
        confirmed, the close goes out as soon as it is."""
        ctx = self.ctx
        sym = symbol or ctx.default_symbol
        for order in list(ctx.risk.state.open_orders.values()):
            if order.symbol == sym and order.status is not OrderStatus.PENDING_CANCEL:
                ctx.risk.cancel(order.client_order_id)
        ctx.after_action()
        try:
            return ctx.risk.close_position(sym)
        except InsufficientBalance:
            ctx.pending_close.add(sym)
            return None
        finally:
            ctx.after_action()


def _dec(value: Number | None, field: str) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value))  # the float's shortest decimal text, not its binary
    if value is None:
        raise ValidationError(field, "required", None)
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except ArithmeticError:  # decimal.InvalidOperation
        raise ValidationError(field, "not a number", value) from None


_FLOAT_EXACT_LIMIT = 2.0**22  # below it a float's ulp is finer than 1e-9 (see _ratio)


def _ratio(value: Number, field: str) -> tuple[int, int]:
    """``value`` as an exact fraction (numerator, denominator > 0); a float as the
    decimal of its shortest repr.  Fast path for floats: when ``r = round(x * 1e9)``
    gives back ``x`` as ``r / 1e9``, the shortest repr is exactly r/1e9 (it has no more
    digits than r/1e9, so it lies on the same 1e-9 grid, and below 2**22 two points of
    that grid never round to the same float)."""
    dec: Decimal
    if type(value) is Decimal:  # the exact common types first: one check each
        dec = value
    elif type(value) is str:
        try:
            dec = Decimal(value)
        except ArithmeticError:  # decimal.InvalidOperation, as ``_dec``
            raise ValidationError(field, "not a number", value) from None
    elif isinstance(value, float):
        if -_FLOAT_EXACT_LIMIT < value < _FLOAT_EXACT_LIMIT:  # also False for NaN
            r = round(value * 1e9)
            if r / 1e9 == value:
                return r, SCALE
        dec = Decimal(repr(value))
    elif isinstance(value, bool):
        raise ValidationError(field, "must be a number", value)
    elif isinstance(value, int):
        return value, 1
    else:
        dec = _dec(value, field)
    try:
        return dec.as_integer_ratio()
    except (ValueError, OverflowError):
        raise ValidationError(field, "must be finite", value) from None


def _on_grid(value: Number, field: str, grid_raw: int, up: bool) -> int:
    """Raw integer (1e-9 units) on the instrument's grid, rounded down, or up."""
    num, den = _ratio(value, field)
    if up:
        return -(-num * SCALE // (den * grid_raw)) * grid_raw
    return num * SCALE // (den * grid_raw) * grid_raw


def _coerce(name: str, kind: type, value: Any) -> Any:
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is Decimal:
            return _dec(value, name)
        return kind(value)
    except (ValueError, TypeError, ArithmeticError):
        raise ValidationError(name, f"must be {kind.__name__}", value) from None


class StrategyContext:
    """What the engine gives a strategy: the gateway, the clock, the instruments."""

    def __init__(
        self,
        risk: RiskEngine,
        clock: Clock,
        instruments: dict[str, Instrument],
        default_symbol: str,
        after_action: Callable[[], None],
        set_timer: Callable[[str, int], None],
    ) -> None:
        self.risk = risk
        self.clock = clock
        self.instruments = instruments
        self.default_symbol = default_symbol
        self.after_action = after_action
        self.set_timer = set_timer
        self.pending_close: set[str] = set()

    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise ValidationError("symbol", "unknown symbol", symbol)
        return inst
