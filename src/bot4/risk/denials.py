"""Why the risk engine refused an order: explicit codes, in NautilusTrader's spirit."""

from __future__ import annotations

from enum import StrEnum

from bot4.core.errors import Bot4Error


class DenialReason(StrEnum):
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    STOP_LOSS_REQUIRED = "STOP_LOSS_REQUIRED"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    MARKET_DATA_STALE = "MARKET_DATA_STALE"
    PRICE_OUTSIDE_BAND = "PRICE_OUTSIDE_BAND"
    NOTIONAL_EXCEEDS_MAX_PER_ORDER = "NOTIONAL_EXCEEDS_MAX_PER_ORDER"
    MAX_OPEN_ORDERS_EXCEEDED = "MAX_OPEN_ORDERS_EXCEEDED"
    SUBMIT_RATE_EXCEEDED = "SUBMIT_RATE_EXCEEDED"
    POSITION_SIZE_EXCEEDS_LIMIT = "POSITION_SIZE_EXCEEDS_LIMIT"
    LEVERAGE_EXCEEDS_MAX = "LEVERAGE_EXCEEDS_MAX"
    DAILY_LOSS_LIMIT_REACHED = "DAILY_LOSS_LIMIT_REACHED"
    CORRELATION_EXCEEDS_LIMIT = "CORRELATION_EXCEEDS_LIMIT"
    VAR_EXCEEDS_LIMIT = "VAR_EXCEEDS_LIMIT"
    NO_EQUITY = "NO_EQUITY"
    RECONCILING = "RECONCILING"


class RiskDenied(Bot4Error):
    """An order the risk engine refused; journaled as an ``OrderDenied`` event."""

    code = "RISK_DENIED"

    def __init__(self, reason: DenialReason, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason.value}: {message}")
