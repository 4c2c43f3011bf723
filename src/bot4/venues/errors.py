"""What to do about a venue error: ccxt's exceptions mapped to actions.

The action, not the exception class, drives the adapter, the circuit breakers and the
kill switch:

* RETRY: a transient network fault on a request that is safe to repeat -> backoff.
* WAIT: the venue throttled us -> wait out Retry-After, then go on (never resend early).
* REFUSE: the venue rejected this order for its content -> report it, don't retry.
* REAUTHENTICATE: credentials or signature -> re-sign / re-login, then retry once.
* RESYNC: our view diverged (clock, book checksum, unknown order) -> resync, reconcile.
* UNKNOWN_OUTCOME: a write (create/cancel) may or may not have happened (timeout,
  connection lost after sending) -> ask the venue by client order id before anything
  is resent.  This is what keeps orders from being lost or doubled.
* STOP_TRADING: the account or the exchange cannot trade -> trip the kill switch.
"""

from __future__ import annotations

from enum import StrEnum

import ccxt


class ErrorAction(StrEnum):
    RETRY = "RETRY"
    WAIT = "WAIT"
    REFUSE = "REFUSE"
    REAUTHENTICATE = "REAUTHENTICATE"
    RESYNC = "RESYNC"
    UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
    STOP_TRADING = "STOP_TRADING"


# Most specific first: ccxt's classes form a hierarchy (e.g. RateLimitExceeded is a
# DDoSProtection is a NetworkError), and the first match wins.
_TABLE: tuple[tuple[type[BaseException], ErrorAction], ...] = (
    (ccxt.AccountSuspended, ErrorAction.STOP_TRADING),
    (ccxt.PermissionDenied, ErrorAction.STOP_TRADING),
    (ccxt.AuthenticationError, ErrorAction.REAUTHENTICATE),
    (ccxt.InvalidNonce, ErrorAction.RESYNC),
    (ccxt.ChecksumError, ErrorAction.RESYNC),
    (ccxt.OrderNotFound, ErrorAction.RESYNC),
    (ccxt.DuplicateOrderId, ErrorAction.RESYNC),
    (ccxt.InsufficientFunds, ErrorAction.REFUSE),
    (ccxt.InvalidOrder, ErrorAction.REFUSE),
    (ccxt.BadSymbol, ErrorAction.REFUSE),
    (ccxt.BadRequest, ErrorAction.REFUSE),
    (ccxt.NotSupported, ErrorAction.REFUSE),
    (ccxt.RateLimitExceeded, ErrorAction.WAIT),
    (ccxt.DDoSProtection, ErrorAction.WAIT),
    (ccxt.OnMaintenance, ErrorAction.WAIT),
    (ccxt.RequestTimeout, ErrorAction.RETRY),
    (ccxt.ExchangeNotAvailable, ErrorAction.RETRY),
    (ccxt.NetworkError, ErrorAction.RETRY),
    (ccxt.ExchangeError, ErrorAction.REFUSE),
)

_WRITE_UNCERTAIN = (ccxt.RequestTimeout, ccxt.ExchangeNotAvailable, ccxt.NetworkError)


def classify(exc: BaseException, write: bool = False) -> ErrorAction:
    """The action for ``exc``; ``write`` for requests that change venue state (create,
    cancel): a network failure there leaves the outcome unknown, and a blind retry
    could double an order."""
    if (
        write
        and isinstance(exc, _WRITE_UNCERTAIN)
        # a throttle (429/418) or maintenance answer means the write was not done
        and not isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded | ccxt.OnMaintenance)
    ):
        return ErrorAction.UNKNOWN_OUTCOME
    for cls, action in _TABLE:
        if isinstance(exc, cls):
            return action
    return (
        ErrorAction.RETRY if isinstance(exc, OSError | TimeoutError) else ErrorAction.STOP_TRADING
    )


def counts_against_venue(exc: BaseException) -> bool:
    """For the circuit breaker: the venue's health, not our order's content."""
    return classify(exc) in (ErrorAction.RETRY, ErrorAction.WAIT, ErrorAction.STOP_TRADING)
