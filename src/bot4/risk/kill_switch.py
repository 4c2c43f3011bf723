"""The kill switch: conditions that stop new risk, and how trading comes back.

Trip conditions: drawdown from the equity peak, daily loss, venue error rate (a circuit
breaker over venue calls opening), stale market data for a symbol with exposure, a lost
venue connection, and a manual trigger.  On a trip the switch moves trading to HALTED
(or REDUCING), cancels every open order that could add risk (protective reduce-only
exits stay), optionally flattens every position with reduce-only market orders (then
the exits are cancelled too, and a position whose coins they still hold is closed as
soon as their cancel is confirmed), and journals why (a ``TradingStateChanged`` event).

Recovery is explicit: ``reset()`` re-enables at once; ``reset(staged=True)`` re-enables
with size limits scaled by the profile's stages (25 % → 50 % → 100 % over time), and only
while no trip condition holds; a condition that comes back trips the switch again.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from bot4.core.errors import InsufficientBalance, ValidationError
from bot4.risk.breaker import BreakerConfig, BreakerState, CircuitBreaker
from bot4.risk.profile import KillSwitchConfig

DAY_NS = 86_400 * 10**9

if TYPE_CHECKING:
    from bot4.risk.engine import RiskEngine


class KillSwitch:
    def __init__(
        self,
        engine: RiskEngine,
        config: KillSwitchConfig,
        stages: Sequence[tuple[int, Decimal]],
    ) -> None:
        self.engine = engine
        self.config = config
        self.stages = [(after * 10**9, share.as_integer_ratio()) for after, share in stages]
        self._dd = config.max_drawdown_pct.as_integer_ratio()
        self._daily = config.daily_loss_pct.as_integer_ratio()
        self.peak_equity = 0
        self._floor = 0  # see _set_floor
        self._floor_peak: int | None = None
        self._floor_start: int | None = None
        self.connected = True
        self.trips: list[tuple[int, str, str]] = []  # (ts, condition, detail)
        self.reset_at: int | None = None
        self.pending_flatten: set[str] = set()
        self.venue_breaker = CircuitBreaker(
            "venue",
            BreakerConfig(
                open_at=float(config.max_error_rate),
                close_below=min(float(config.max_error_rate), 0.35),
                window_ns=config.error_window_seconds * 10**9,
                buckets=min(config.error_window_seconds, 60),
                min_calls=config.error_min_calls,
            ),
            clock=engine.clock,
            on_state_change=self._on_breaker,
        )

    def _set_floor(self, peak: int, start: int) -> None:
        """The highest equity at which a loss limit holds, for this peak and day start:
        ``(peak - e) * den >= peak * num`` exactly when ``e <= peak * (den - num) // den``
        (den > 0, e an integer), likewise for the daily loss while ``start > 0``.  The
        per-price test is then one comparison instead of four products of ~90-bit
        integers; it is recomputed only when the peak or the day's start moves."""
        num, den = self._dd
        floor = peak * (den - num) // den
        if start > 0:
            dnum, dden = self._daily
            floor = max(floor, start * (dden - dnum) // dden)
        self._floor, self._floor_peak, self._floor_start = floor, peak, start

    @property
    def tripped(self) -> bool:
        return self.engine.trading_state != "ACTIVE"

    # -- conditions -----------------------------------------------------------------------
    def conditions(self, now: int, stale: bool = True) -> list[tuple[str, str]]:
        """Every trip condition that holds now, as (condition, detail); ``stale=False``
        skips the stale-data scan (a price update cannot make data stale)."""
        eng = self.engine
        found: list[tuple[str, str]] = []
        equity = eng.equity_money()
        if equity is not None:
            if equity > self.peak_equity:
                self.peak_equity = equity
            eng.roll_day(now, equity)
            num, den = self._dd
            peak = self.peak_equity
            if peak > 0 and (peak - equity) * den >= peak * num:
                found.append(
                    (
                        "DRAWDOWN",
                        f"equity {equity / peak:.4f} of peak "
                        f"(limit {self.config.max_drawdown_pct})",
                    )
                )
            num, den = self._daily
            start = eng.day_start_equity
            if start > 0 and (start - equity) * den >= start * num:
                found.append(
                    (
                        "DAILY_LOSS",
                        f"equity {equity / start:.4f} of day start "
                        f"(limit {self.config.daily_loss_pct})",
                    )
                )
        if self.venue_breaker._state is not BreakerState.CLOSED:  # lock-free read
            found.append(
                ("ERROR_RATE", f"venue error rate {self.venue_breaker.failure_rate():.2f}")
            )
        if not self.connected:
            found.append(("CONNECTION_LOST", "the venue connection is down"))
        if not stale:
            return found
        stale_ns = self.config.stale_data_seconds * 10**9
        exposed = {s for s, p in eng.state.positions.items() if p.qty_raw}
        exposed.update(o.symbol for o in eng.state.open_orders.values())
        for symbol in sorted(exposed):
            last = eng.market.last_update_ns.get(symbol)
            if last is None or now - last > stale_ns:
                found.append(
                    ("STALE_DATA", f"no price for {symbol} in {self.config.stale_data_seconds} s")
                )
        return found

    def evaluate(self, now: int, stale: bool = False, equity: int | None = None) -> None:
        """Trip on the first condition that holds; advance a staged re-enable.
        ``equity``: the account's value if the caller has just computed it."""
        eng = self.engine
        if eng.state.trading_state != "ACTIVE":
            return
        if not stale and self.reset_at is None and self.connected:
            # The per-tick path: only the equity conditions can have changed.
            if equity is None:
                equity = eng.equity_money()
            if equity is not None:
                if equity > self.peak_equity:
                    self.peak_equity = equity
                if not eng._day_lo <= now < eng._day_hi:
                    eng.roll_day(now, equity)
                peak = self.peak_equity
                start = eng.day_start_equity
                if peak is not self._floor_peak or start is not self._floor_start:
                    self._set_floor(peak, start)
                if equity > self._floor:
                    return  # neither loss limit can hold
        found = self.conditions(now, stale)
        if found:
            self.trip(*found[0])
        elif self.reset_at is not None:
            self._advance_stage(now)

    # -- trip and recovery --------------------------------------------------------------
    def trip(self, condition: str, detail: str = "") -> None:
        """Stop new risk: state first (so nothing new gets in), then cancel and flatten."""
        eng = self.engine
        now = eng.clock.now_ns()
        self.trips.append((now, condition, detail))
        self.reset_at = None
        eng.scale = (1, 1)
        eng.set_trading_state(self.config.on_trip, f"KILL_SWITCH {condition}: {detail}")
        flatten = self.config.flatten_on_trip
        for order in list(eng.state.open_orders.values()):
            # Protective exits (reduce-only) stay unless we flatten: cancelling a stop
            # would leave the position with more risk, not less.
            if order.status.value != "PENDING_CANCEL" and (flatten or not order.reduce_only):
                eng.cancel(order.client_order_id)
        if flatten:
            self.pending_flatten = {s for s, p in eng.state.positions.items() if p.qty_raw}
            self.retry_flatten()

    def retry_flatten(self) -> None:
        """Close what can be closed now; a position whose coins are still held by an
        order being cancelled is closed when that cancel is confirmed."""
        eng = self.engine
        for symbol in sorted(self.pending_flatten):
            try:
                eng.close_position(symbol)
            except InsufficientBalance:
                continue  # the funds are still locked by an order on its way out
            self.pending_flatten.discard(symbol)

    def trigger(self, reason: str = "manual") -> None:
        """The manual trigger."""
        self.trip("MANUAL", reason)

    def set_connected(self, connected: bool) -> None:
        self.connected = connected
        if not connected:
            self.evaluate(self.engine.clock.now_ns(), stale=True)

    def _on_breaker(self, _name: str, _old: BreakerState, new: BreakerState) -> None:
        if new is BreakerState.OPEN and self.engine.trading_state == "ACTIVE":
            self.trip("ERROR_RATE", f"venue error rate {self.venue_breaker.failure_rate():.2f}")

    def reset(self, staged: bool = False, reason: str = "manual reset") -> None:
        """Re-enable trading.  Refused while a condition other than the drawdown holds
        (the drawdown is measured from a new peak: the current equity)."""
        eng = self.engine
        now = eng.clock.now_ns()
        equity = eng.equity_money()
        self.peak_equity = equity or 0
        holding = [c for c in self.conditions(now) if c[0] != "DRAWDOWN"]
        if holding:
            raise ValidationError("reset", "a trip condition still holds", holding)
        if staged:
            self.reset_at = now
            eng.scale = self.stages[0][1]
        else:
            self.reset_at = None
            eng.scale = (1, 1)
        eng.set_trading_state("ACTIVE", f"{reason}{' (staged)' if staged else ''}")

    def _advance_stage(self, now: int) -> None:
        assert self.reset_at is not None
        elapsed = now - self.reset_at
        share = self.stages[0][1]
        for after, stage_share in self.stages:
            if elapsed >= after:
                share = stage_share
        self.engine.scale = share
        if share == (1, 1):
            self.reset_at = None
