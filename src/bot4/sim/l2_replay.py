"""Rebuild L2 books from raw Binance captures and check them against ``bookTicker``.

The check is the evidence that the book builder is exact: Binance pushes a
``bookTicker`` for every change of the best bid or ask, stamped with the order-book
update id ``u`` that caused it, on the same id sequence as the depth diffs.  So after
applying every diff up to update id ``u_d`` the true best bid/ask is the one in the
latest ticker whose ``u <= u_d`` (the BBO cannot have changed after that ticker without
a newer ticker).  Two rules are reported:

* ``at_or_before`` (the main figure): every applied diff is compared with the latest
  ticker at or before its final update id;
* ``exact``: only diffs whose final update id equals some ticker's ``u`` (a subset).

Tickers are collected over all files first and looked up by update id, so the check
does not depend on the receive order of the two streams.  Price *and* quantity of
both sides must be equal for a match.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot4.sim.binance_capture import (
    BookTicker,
    DepthDiff,
    DepthSnapshot,
    Market,
    detect_market,
    read_capture,
)
from bot4.sim.l2_book import BinanceDepthSync, SyncGap

__all__ = ["FileCheck", "Mismatch", "check_books_against_tickers"]

Bbo = tuple[int, int, int, int]  # bid price, bid qty, ask price, ask qty


@dataclass(frozen=True, slots=True)
class Mismatch:
    update_id: int
    ticker_update_id: int
    book: Bbo
    ticker: Bbo


@dataclass(slots=True)
class FileCheck:
    """Result for one capture file of a (possibly multi-file) replay."""

    source: str
    diffs: int = 0
    applied: int = 0
    snapshots: int = 0
    tickers: int = 0
    gaps: list[SyncGap] = field(default_factory=list)
    compared: int = 0
    matched: int = 0
    exact_compared: int = 0
    exact_matched: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)  # the first few

    @property
    def match_rate(self) -> float:
        return self.matched / self.compared if self.compared else 0.0

    @property
    def exact_match_rate(self) -> float:
        return self.exact_matched / self.exact_compared if self.exact_compared else 0.0

    def summary(self) -> str:
        return (
            f"{Path(self.source).name}: {self.diffs} diffs ({self.applied} applied), "
            f"{self.snapshots} snapshot(s), {len(self.gaps)} gap(s), {self.tickers} tickers; "
            f"at_or_before {self.matched}/{self.compared} = {self.match_rate:.4%}, "
            f"exact {self.exact_matched}/{self.exact_compared} = {self.exact_match_rate:.4%}"
        )


def check_books_against_tickers(
    paths: Sequence[str | Path], market: Market | None = None, keep_mismatches: int = 10
) -> list[FileCheck]:
    """Replay consecutive capture files through one ``BinanceDepthSync`` and compare.

    The files must be consecutive parts of one capture (the second part of the spot
    BTCUSDT capture has no snapshot of its own and continues the first one's sequence).
    """
    if not paths:
        raise ValueError("no capture files given")
    market = market if market is not None else detect_market(paths[0])
    sync = BinanceDepthSync(market)
    tickers: list[tuple[int, Bbo]] = []
    points: list[list[tuple[int, Bbo]]] = []
    checks: list[FileCheck] = []
    for path in paths:
        check = FileCheck(source=str(path))
        checks.append(check)
        file_points: list[tuple[int, Bbo]] = []
        points.append(file_points)
        sync.gaps = check.gaps  # gaps seen while reading this file land in its report
        for message in read_capture(path, (DepthDiff, DepthSnapshot, BookTicker)):
            if isinstance(message, BookTicker):
                check.tickers += 1
                tickers.append(
                    (
                        message.update_id,
                        (message.bid_price, message.bid_qty, message.ask_price, message.ask_qty),
                    )
                )
            elif isinstance(message, DepthDiff):
                check.diffs += 1
                before = sync.applied
                sync.on_diff(message)
                if sync.applied != before and sync.is_live:
                    check.applied += 1
                    bid, ask = sync.book.best_bid(), sync.book.best_ask()
                    if bid is not None and ask is not None:
                        file_points.append((message.final_update_id, (*bid, *ask)))
            elif isinstance(message, DepthSnapshot):
                check.snapshots += 1
                before = sync.applied
                sync.on_snapshot(message)
                # Diffs replayed from the buffer count for this file too.
                check.applied += sync.applied - before
                if sync.is_live and sync.last_diff is not None:
                    bid, ask = sync.book.best_bid(), sync.book.best_ask()
                    if bid is not None and ask is not None:
                        file_points.append((sync.last_diff.final_update_id, (*bid, *ask)))
    tickers.sort(key=lambda t: t[0])  # stable: the last received wins for equal ids
    ids = [t[0] for t in tickers]
    for check, file_points in zip(checks, points, strict=True):
        for update_id, bbo in file_points:
            idx = bisect.bisect_right(ids, update_id) - 1
            if idx < 0:
                continue
            ticker_id, ticker_bbo = tickers[idx]
            check.compared += 1
            ok = ticker_bbo == bbo
            check.matched += ok
            if ticker_id == update_id:
                check.exact_compared += 1
                check.exact_matched += ok
            if not ok and len(check.mismatches) < keep_mismatches:
                check.mismatches.append(Mismatch(update_id, ticker_id, bbo, ticker_bbo))
    return checks
