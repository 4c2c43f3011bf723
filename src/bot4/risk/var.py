"""Value at risk of a book of positions, historical and parametric (95 % by default).

Analytics, so floats: returns are log returns sampled on a fixed grid (see
``bot4.risk.market``); the loss is the book's value change over one grid interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def historical_var(pnl: ArrayLike, confidence: float = 0.95) -> float:
    """The loss exceeded in (1 - confidence) of the observed P&L outcomes (a positive
    number is a loss)."""
    values = np.asarray(pnl, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no P&L observations")
    return float(-np.quantile(values, 1 - confidence, method="linear"))


def parametric_var(mean: float, std: float, confidence: float = 0.95) -> float:
    """Normal (variance-covariance) VaR: -(mean + z_(1-c) x std)."""
    if std < 0:
        raise ValueError("std must be >= 0")
    return float(-(mean + stats.norm.ppf(1 - confidence) * std))


def book_pnl(values: Sequence[float], returns: ArrayLike) -> np.ndarray:
    """The book's P&L per interval: position values (quote units, signed) times each
    symbol's simple return; ``returns`` has one row per symbol."""
    r = np.expm1(np.asarray(returns, dtype=np.float64))
    return np.asarray(values, dtype=np.float64) @ r


def book_var(
    values: Sequence[float], returns: ArrayLike, confidence: float = 0.95
) -> tuple[float, float]:
    """(historical, parametric) VaR of a book from aligned per-symbol log returns."""
    pnl = book_pnl(values, returns)
    return historical_var(pnl, confidence), parametric_var(
        float(pnl.mean()), float(pnl.std(ddof=1)), confidence
    )
