"""L2 books rebuilt from the raw Binance captures in ../shared/data.

The evidence that the book builder is exact: the rebuilt best bid/ask (price and
quantity, both sides) equals Binance's own bookTicker at the same order-book update id
(rule in ``bot4.sim.l2_replay``).  Missing data files make these tests fail, not skip.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from bot4.core.enums import OrderSide
from bot4.core.numbers import from_raw, to_raw
from bot4.sim.binance_capture import (
    BookTicker,
    CaptureFormatError,
    DepthDiff,
    DepthSnapshot,
    Market,
    MarkPrice,
    Trade,
    detect_market,
    parse_line,
    parse_raw,
    read_capture,
)
from bot4.sim.l2_book import BinanceDepthSync, DiffOutcome, L2Book, SyncState
from bot4.sim.l2_replay import FileCheck, check_books_against_tickers
from tests.conftest import SHARED_DATA

RAW = SHARED_DATA / "orderbook" / "hftbacktest_binance_raw"
SPOT_BTC = [RAW / "spot_btcusdt_20240808.gz", RAW / "spot_btcusdt_20240809.gz"]
SPOT_ETH = [RAW / "spot_ethusdt_20240808.gz"]
USDM_BTC = [RAW / "usdm_btcusdt_20240718.gz", RAW / "usdm_btcusdt_20240719.gz"]


def _need(paths: list[Path]) -> list[Path]:
    for path in paths:
        assert path.is_file(), f"missing shared data file {path}"
    return paths


# -- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["61737.63000000", "0.00000000", "0", "1000.00", "63943.9", "0.000000001", "12"]
)
def test_parse_raw_fast_path_equals_to_raw(text: str) -> None:
    assert parse_raw(text, "x") == to_raw(text, "x")


def test_parse_raw_falls_back_and_refuses_inexact() -> None:
    assert parse_raw("1E+2", "x") == 100 * 10**9
    assert parse_raw("-1.5", "x") == -1_500_000_000
    with pytest.raises(ValueError):
        parse_raw("0.0000000001", "x")  # 10 decimals: not representable exactly
    with pytest.raises(ValueError):
        parse_raw("abc", "x")


def test_every_number_of_a_real_snapshot_parses_exactly() -> None:
    (path,) = _need(SPOT_ETH)
    with gzip.open(path, "rt") as fh:
        line = next(raw for raw in fh if "lastUpdateId" in raw)
    payload = json.loads(line.split(" ", 1)[1])
    snap = parse_line(line)
    assert isinstance(snap, DepthSnapshot)
    assert snap.last_update_id == 35346513512
    expected = [(to_raw(p, "p"), to_raw(q, "q")) for p, q in payload["bids"]]
    assert list(snap.bids) == expected and len(expected) == 1000


def test_message_counts_per_kind() -> None:
    counts: dict[str, int] = {}
    for m in read_capture(_need(SPOT_BTC[:1])):
        counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    assert counts == {"DepthDiff": 3451, "Trade": 9757, "BookTicker": 28040, "DepthSnapshot": 1}
    trades = list(read_capture(SPOT_BTC[:1], (Trade,)))
    assert len(trades) == 9757 and all(isinstance(t, Trade) for t in trades)
    first = trades[0]
    assert isinstance(first, Trade)
    assert (first.trade_id, first.price, first.qty, first.buyer_is_maker) == (
        3735683259,
        61837_630_000_000,
        20_000_000,
        True,
    )


def test_futures_fields_and_market_detection() -> None:
    path = _need(USDM_BTC[:1])[0]
    assert detect_market(path) is Market.USDM
    assert detect_market(_need(SPOT_ETH)[0]) is Market.SPOT
    diff = next(m for m in read_capture(path, (DepthDiff,)) if isinstance(m, DepthDiff))
    assert diff.prev_final_update_id == 4984028367494 and diff.transaction_ms == 1721347022504
    tick = next(m for m in read_capture(path, (BookTicker,)) if isinstance(m, BookTicker))
    assert (tick.bid_price, tick.bid_qty) == (63943_900_000_000, 46_371_000_000)


def test_bare_messages_and_bad_lines() -> None:
    bare = '1 {"e":"trade","E":5,"T":4,"s":"X","t":9,"p":"1.5","q":"2","m":false}'
    trade = parse_line(bare)
    assert isinstance(trade, Trade) and trade.price == 1_500_000_000 and not trade.buyer_is_maker
    mark = parse_line(
        '7 {"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT",'
        '"p":"63950.10000000","i":"63960.01","P":"63955.0","r":"0.00010000","T":1721376000000}}'
    )
    assert isinstance(mark, MarkPrice)
    assert (mark.mark_price, mark.index_price) == (63950_100_000_000, 63960_010_000_000)
    assert (mark.funding_rate, mark.next_funding_ms) == ("0.00010000", 1721376000000)
    for bad in ["nonsense", '1 {"stream":"x@foo","data":{"e":"foo"}}', "1 [1,2]", "1 {bad"]:
        with pytest.raises(CaptureFormatError):
            parse_line(bad, "f", 3)


# -- the book ----------------------------------------------------------------------------


def test_l2_book_levels_best_and_removal() -> None:
    book = L2Book()
    book.apply([(100, 5), (101, 1), (99, 7)], [(103, 2), (102, 4)])
    assert book.best_bid() == (101, 1) and book.best_ask() == (102, 4)
    book.set_bid(101, 0)  # remove the best: the next one surfaces
    book.set_ask(102, 0)
    assert book.best_bid() == (100, 5) and book.best_ask() == (103, 2)
    assert book.depth(OrderSide.BUY) == [(100, 5), (99, 7)]
    assert book.depth(OrderSide.SELL, 1) == [(103, 2)]
    assert book.qty_at(OrderSide.BUY, 101) == 0 and not book.is_crossed()
    book.set_bid(104, 1)
    assert book.is_crossed()


def test_l2_book_matches_brute_force_under_random_churn() -> None:
    rng = random.Random(5)
    book = L2Book()
    bids: dict[int, int] = {}
    for _ in range(20_000):
        price = rng.randrange(1, 60)
        qty = rng.choice([0, 0, rng.randrange(1, 9)])
        book.set_bid(price, qty)
        if qty:
            bids[price] = qty
        else:
            bids.pop(price, None)
        best = max(bids.items()) if bids else None
        assert book.best_bid() == best
    assert len(book._bid_heap) <= 2 * len(bids) + 65  # stale heap entries stay bounded


# -- the real captures against bookTicker ----------------------------------------------


@pytest.fixture(scope="module")
def checks() -> dict[str, list[FileCheck]]:
    return {
        "spot BTCUSDT": check_books_against_tickers(_need(SPOT_BTC)),
        "spot ETHUSDT": check_books_against_tickers(_need(SPOT_ETH)),
        "USDT-M BTCUSDT": check_books_against_tickers(_need(USDM_BTC)),
    }


def test_rebuilt_books_match_book_ticker(
    checks: dict[str, list[FileCheck]], capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print("\nrebuilt best bid/ask vs bookTicker (latest ticker with u <= book u):")
        for name, file_checks in checks.items():
            for check in file_checks:
                print(f"  {name}: {check.summary()}")
    for file_checks in checks.values():
        for check in file_checks:
            assert check.gaps == []
            assert check.compared >= 3000
            assert check.match_rate >= 0.999, check.mismatches
            assert check.exact_compared >= 190 and check.exact_match_rate == 1.0


def test_second_part_continues_first_and_has_no_snapshot(
    checks: dict[str, list[FileCheck]],
) -> None:
    for key in ("spot BTCUSDT", "USDT-M BTCUSDT"):
        first, second = checks[key]
        assert first.snapshots == 1 and second.snapshots == 0
        assert second.applied == second.diffs  # every diff continued the sequence
    # Alone, the second file can never be synchronised: no snapshot, all diffs buffered.
    sync = BinanceDepthSync(Market.SPOT)
    outcomes = set()
    for m in read_capture(SPOT_BTC[1], (DepthDiff,)):
        assert isinstance(m, DepthDiff)
        outcomes.add(sync.on_diff(m))
    assert outcomes == {DiffOutcome.BUFFERED} and sync.state is SyncState.AWAITING_SNAPSHOT


def test_spot_mismatches_are_missing_tickers_not_book_errors(
    checks: dict[str, list[FileCheck]],
) -> None:
    """The two spot BTCUSDT mismatches (20240809): the ticker ids jump past the diff's
    update id, i.e. the ticker for the change is missing from the capture; the book
    matches the very next ticker's side that did not change."""
    second = checks["spot BTCUSDT"][1]
    assert second.compared - second.matched == 2
    for mm in second.mismatches:
        assert mm.book[2:] == mm.ticker[2:]  # the asks agree; only the bid moved
        assert mm.update_id - mm.ticker_update_id <= 4


# -- gaps and resynchronisation -----------------------------------------------------------


def _lines(path: Path, n: int) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


def _feed(sync: BinanceDepthSync, lines: list[str]) -> None:
    for line in lines:
        m = parse_line(line)
        if isinstance(m, DepthDiff):
            sync.on_diff(m)
        elif isinstance(m, DepthSnapshot):
            sync.on_snapshot(m)


def _snapshot_line(book: L2Book, last_update_id: int) -> str:
    def fmt(levels: list[tuple[int, int]]) -> list[list[str]]:
        return [[str(from_raw(p)), str(from_raw(q))] for p, q in levels]

    payload = {
        "lastUpdateId": last_update_id,
        "bids": fmt(book.depth(OrderSide.BUY)),
        "asks": fmt(book.depth(OrderSide.SELL)),
    }
    return f"1 {json.dumps(payload)}"


@pytest.mark.parametrize("paths, market", [(SPOT_BTC, Market.SPOT), (USDM_BTC, Market.USDM)])
def test_deleted_diff_is_reported_and_resynced_from_next_snapshot(
    paths: list[Path], market: Market
) -> None:
    """A synthetic stream made of real lines with one diff deleted: the gap is reported
    with the ids involved, the book is marked out of sync (fail closed), and the next
    snapshot brings it back to exactly the intact stream's book."""
    lines = _lines(_need(paths)[0], 3000)
    diff_idx = [i for i, s in enumerate(lines) if "depthUpdate" in s]
    snap_idx = next(i for i, s in enumerate(lines) if "lastUpdateId" in s)
    after = [i for i in diff_idx if i > snap_idx]
    victim, resync_at = after[20], after[200]

    reference = BinanceDepthSync(market)  # the intact stream up to ``resync_at``
    _feed(reference, lines[: resync_at + 1])
    assert reference.is_live and reference.gaps == []
    assert reference.last_update_id is not None
    new_snapshot = _snapshot_line(reference.book, reference.last_update_id)

    sync = BinanceDepthSync(market)
    _feed(sync, lines[:victim] + lines[victim + 1 : resync_at + 1])
    assert sync.state is SyncState.OUT_OF_SYNC and not sync.is_live
    assert len(sync.gaps) == 1
    gap = sync.gaps[0]
    deleted = parse_line(lines[victim])
    following = parse_line(lines[diff_idx[diff_idx.index(victim) + 1]])
    assert isinstance(deleted, DepthDiff) and isinstance(following, DepthDiff)
    assert gap.final_update_id == following.final_update_id
    if market is Market.SPOT:
        assert gap.last_update_id == deleted.first_update_id - 1
        assert gap.expected == deleted.first_update_id
    else:
        assert gap.last_update_id == gap.expected == deleted.prev_final_update_id
        assert gap.prev_final_update_id == deleted.final_update_id
    assert sync.buffered > 0  # diffs after the gap wait for the next snapshot

    _feed(sync, [new_snapshot, *lines[resync_at + 1 :]])
    intact = BinanceDepthSync(market)
    _feed(intact, lines)
    assert sync.is_live and sync.snapshots_loaded == 2 and len(sync.gaps) == 1
    assert sync.last_update_id == intact.last_update_id
    assert sync.book.bids == intact.book.bids
    assert sync.book.asks == intact.book.asks


def test_snapshot_older_than_buffered_diffs_is_not_bridged() -> None:
    lines = _lines(_need(SPOT_ETH)[0], 400)
    diffs = [m for m in map(parse_line, lines) if isinstance(m, DepthDiff)]
    sync = BinanceDepthSync(Market.SPOT)
    for d in diffs[5:]:
        assert sync.on_diff(d) is DiffOutcome.BUFFERED
    stale = DepthSnapshot(0, diffs[2].final_update_id, ((1, 1),), ((2, 1),))
    assert sync.on_snapshot(stale) is SyncState.OUT_OF_SYNC
    assert sync.gaps[0].reason.startswith("snapshot older")
    assert sync.buffered == len(diffs) - 5  # kept for the next snapshot, no duplicates
    good = DepthSnapshot(0, diffs[4].final_update_id, ((1, 1),), ((2_000, 1),))
    assert sync.on_snapshot(good) is SyncState.LIVE
    assert sync.applied == len(diffs) - 5 and sync.last_update_id == diffs[-1].final_update_id
