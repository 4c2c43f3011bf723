"""``benchmarks/peer_nautilus_l3.py`` must build the book bot4 builds, or its rate means
nothing: same orders, same queue order, same best levels.  It runs under the interpreter
in ``BOT4_NAUTILUS_PYTHON`` (else this one) and the tests skip when that interpreter has
no ``nautilus_trader`` (the script exits 3)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot4.core.numbers import SCALE
from bot4.sim.l3_feed import BitfinexL3Feed, load_bitfinex_raw

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "peer_nautilus_l3.py"
L3_FILE = ROOT.parent / "shared/data/orderbook/misc/bitfinex_tBTCUSD_raw_L3_book_R0.json"
PYTHON = os.environ.get("BOT4_NAUTILUS_PYTHON") or sys.executable

# Every rule of the R0 mapping: partial fills keep their place, a larger amount and a
# new price requeue, a side flip, deletes (one of an unknown id), a heartbeat, a
# locked book, integer and exponent-notation numbers.
SYNTHETIC: list[Any] = [
    {"event": "info", "version": 2},
    {"event": "subscribed", "channel": "book", "chanId": 1, "prec": "R0"},
    [1, [[10, 100.5, 1.0], [11, 100.5, 2.0], [12, 100, 0.5], [20, 101, -1.0],
         [21, 101, -0.25], [22, 102.5, -3]]],
    [1, "hb"],
    [1, [10, 100.5, 1.5]],
    [1, [11, 100.5, 1.2]],
    [1, [21, 101, -0.1]],
    [1, [20, 101, -2.0]],
    [1, [12, 100.5, 0.5]],
    [1, [22, 100.25, 0.7]],
    [1, [99, 0, 1]],
    [1, [30, 100.75, 1e-05]],
    [1, [31, 100.12345678, 0.00000001]],
    [1, [30, 0, 1]],
    [1, [40, 101, 0.3]],
    [1, [41, 103, -4]],
    [1, [41, 0, -1]],
]  # fmt: skip


def plain(raw: int) -> str:
    return format((Decimal(raw) / SCALE).normalize(), "f")


def bot4_summary(messages: list[Any]) -> dict[str, Any]:
    """The peer's ``summary`` of bot4's own book for the same feed."""
    feed = BitfinexL3Feed()
    feed.apply_all(messages)
    book = feed.book
    digest = hashlib.sha256()
    for tag, is_buy in (("B", True), ("A", False)):
        for o in book.side_orders(is_buy):
            digest.update(f"{tag} {o.order_id} {plain(o.price)} {plain(o.qty)}\n".encode())
    bid, ask = book.best_bid(), book.best_ask()
    return {
        "final_orders": len(book),
        "best_bid": None if bid is None else plain(bid),
        "best_bid_size": None if bid is None else plain(book.best_bid_qty()),
        "best_ask": None if ask is None else plain(ask),
        "best_ask_size": None if ask is None else plain(book.best_ask_qty()),
        "book_sha256": digest.hexdigest(),
    }


def run_peer(path: Path) -> subprocess.CompletedProcess[str]:
    args = [PYTHON, str(SCRIPT), "--repeats", "1", "--path", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode == 3:
        pytest.skip(
            f"nautilus_trader is not importable by {PYTHON} "
            "(set BOT4_NAUTILUS_PYTHON to an interpreter that has it)"
        )
    return proc


def peer_result(path: Path) -> dict[str, Any]:
    proc = run_peer(path)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["peer"] == "nautilus_trader"
    assert result["full_messages_per_sec"] > 0 and result["apply_messages_per_sec"] > 0
    return result


def same_book(peer: dict[str, Any], ours: dict[str, Any]) -> None:
    assert {k: peer[k] for k in ours} == ours


def test_synthetic_feed_matches_bot4(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(SYNTHETIC))
    result = peer_result(path)
    assert result["messages"] == len(SYNTHETIC)
    same_book(result, bot4_summary(SYNTHETIC))


def test_more_than_8_decimals_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text(json.dumps([*SYNTHETIC, [1, [50, 100.123456789, 1]]]))
    proc = run_peer(path)
    assert proc.returncode not in (0, 3)
    assert "more than 8 decimals" in proc.stderr


@pytest.mark.skipif(not L3_FILE.exists(), reason=f"{L3_FILE} is not here")
def test_bitfinex_file_matches_bot4() -> None:
    result = peer_result(L3_FILE)
    assert result["messages"] == 100_001
    same_book(result, bot4_summary(load_bitfinex_raw(L3_FILE)))
