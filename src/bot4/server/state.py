"""Persisting the exchange across restarts: accounts, open orders, every sequence.

On a graceful shutdown (and every ``autosave_seconds``) the server writes one JSON
file: balances (free and locked), every open order with its fills so far, in queue
priority so the books come back in the same order, the counters that clients see
(order ids, report sequence, per-symbol trade ids and depth update ids), fee volumes,
the market maker's RNG state, and the client histories (``GET order`` on old orders,
``myTrades``) and recent candles.  A client that reconnects finds its orders under the
same ids and reconciles with ``openOrders`` and ``myTrades``; depth update ids continue
from where they stopped, so a resynchronising book sees no jump backwards.

The matching engine has no restore API, so ``restore_engine`` rebuilds its records
directly (the engine's own structures: ``SimOrder``, book records, parked stops).  That
couples this module to the engine's internals on purpose, in one place, and the result
is verified with the engine's own invariant check (``matching_checks.audit``: every
lock equals what the open orders hold, books valid, stops parked) before the server
starts; a state file that does not pass is refused rather than traded on.

Writes are atomic (temp file, fsync, rename): a crash mid-write leaves the previous file.
Between two snapshots every accepted command goes to the command log (``command_log``),
so a process killed without a shutdown comes back from snapshot + log; the snapshot
records the log sequence it holds (``log_seq``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from bot4.core.enums import OrderSide, OrderType, TimeInForce
from bot4.server.exchange import DepthState, Exchange
from bot4.server.orders import AccountHistory
from bot4.sim.matching import MatchingEngine
from bot4.sim.matching_checks import audit
from bot4.sim.matching_core import AccountState, MatchingCore
from bot4.sim.matching_types import NewOrder, SelfTradePrevention, SimOrder, SimStatus

VERSION: Final = 1


class StateError(Exception):
    """A state file that cannot be restored (wrong version, inconsistent content)."""


def _order_state(o: SimOrder) -> list[Any]:
    return [
        o.order_id,
        o.account,
        o.symbol,
        o.client_order_id,
        o.side.value,
        o.order_type.value,
        o.tif.value,
        o.post_only,
        o.price,
        o.trigger,
        o.display,
        o.quote_qty,
        o.stp.value,
        o.orig_qty,
        o.executed,
        o.cum_quote,
        o.prevented,
        o.status.value,
        o.time,
        o.update_time,
        o.working,
        o.lock_unit,
        o.locked_money,
    ]


def capture(ex: Exchange, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to restart where the exchange stands now."""
    eng = ex.engine
    orders: list[list[Any]] = []
    for st in eng.symbols.values():
        for is_buy in (True, False):
            for resting in st.book.side_orders(is_buy):
                orders.append(_order_state(eng.open_orders[resting.order_id]))
    for oid in sorted(eng.open_orders):
        o = eng.open_orders[oid]
        if not o.working:
            orders.append(_order_state(o))
    return {
        "version": VERSION,
        "saved_ms": ex.now_ms(),
        "engine": {
            "next_id": eng._next_id,
            "seq": eng._seq,
            "fees_collected": eng.fees_collected,
            "fee_volume": {
                a: {str(d): v for d, v in days.items()} for a, days in eng.fees._volume.items()
            },
        },
        "accounts": {
            name: {
                "stp": s.stp.value,
                "balances": {a: [b.free, b.locked] for a, b in s.account.balances.items()},
            }
            for name, s in eng.accounts.items()
        },
        "symbols": {
            name: {
                "last_price": st.last_price,
                "trade_seq": st.trade_seq,
                "update_id": ex.depth[name].update_id,
            }
            for name, st in eng.symbols.items()
        },
        "orders": orders,
        "history": {a: h.to_state() for a, h in ex.history.items()},
        "market": {s: m.to_state() for s, m in ex.market.items()},
        **(extra or {}),
    }


def save(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: the old file stays until the new one is complete on disk."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read state file {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise StateError(f"{path}: not a version-{VERSION} bot4 exchange state")
    return data


def restore(ex: Exchange, data: dict[str, Any]) -> None:
    """Load a captured state into a freshly built Exchange (before anything trades)."""
    eng = ex.engine
    if eng.accounts or eng.open_orders:
        raise StateError("restore needs a fresh exchange")
    missing = set(data["symbols"]) - set(eng.symbols)
    if missing:
        raise StateError(f"the state holds symbols that are not served: {sorted(missing)}")
    try:
        restore_engine(eng, data)
        audit(eng)
    except (KeyError, ValueError, TypeError, AssertionError) as exc:
        raise StateError(f"inconsistent state: {exc!r}") from None
    for name, s in data["symbols"].items():
        ex.depth[name] = DepthState(eng.book(name), int(s["update_id"]))
    for account, h in data.get("history", {}).items():
        ex.history.setdefault(account, AccountHistory()).load_state(h)
    for symbol, m in data.get("market", {}).items():
        if symbol in ex.market:
            ex.market[symbol].load_state(m)


def restore_engine(eng: MatchingEngine, data: dict[str, Any]) -> None:
    """Rebuild accounts, open orders (in queue order), parked stops and counters."""
    for name, a in data["accounts"].items():
        state = eng.accounts[name] = AccountState(SelfTradePrevention(a["stp"]))
        for asset, (free, locked) in a["balances"].items():
            bal = state.account.balance(asset)
            bal.free, bal.locked = int(free), int(locked)
    for v in data["orders"]:
        (
            oid,
            account,
            symbol,
            cid,
            side,
            otype,
            tif,
            post_only,
            price,
            trigger,
            display,
            quote_qty,
            stp,
            orig_qty,
            executed,
            cum_quote,
            prevented,
            status,
            time,
            update_time,
            working,
            lock_unit,
            locked_money,
        ) = v
        st = eng.symbols[symbol]
        acct = eng.accounts[account]
        req = NewOrder(
            account,
            symbol,
            OrderSide(side),
            OrderType(otype),
            orig_qty,
            price,
            trigger,
            TimeInForce(tif),
            bool(post_only),
            display,
            cid,
            SelfTradePrevention(stp),
            quote_qty,
        )
        pair = acct.balances.get(symbol)
        if pair is None:
            pair = acct.balances[symbol] = (
                acct.account.balance(st.base),
                acct.account.balance(st.quote),
            )
        o = SimOrder(
            oid, req, cid, orig_qty, SelfTradePrevention(stp), time, pair[0], pair[1], lock_unit
        )
        o.executed, o.cum_quote, o.prevented = executed, cum_quote, prevented
        o.status = SimStatus(status)
        o.update_time = update_time
        o.working = bool(working)
        o.locked_money = locked_money
        if oid in eng.open_orders or cid in acct.open:
            raise ValueError(f"order {oid} ({cid}) twice")
        acct.open[cid] = o
        eng.open_orders[oid] = o
        if o.working:
            st.book.add(oid, o.is_buy, price, o.leaves_qty, display, account, o)
        else:
            MatchingCore._park(st, o)
    for name, s in data["symbols"].items():
        st = eng.symbols[name]
        st.last_price = int(s["last_price"])
        st.trade_seq = int(s["trade_seq"])
    e = data["engine"]
    eng._next_id = int(e["next_id"])
    eng._seq = int(e["seq"])
    if eng.open_orders and eng._next_id <= max(eng.open_orders):
        raise ValueError("next order id is not above every open order id")
    eng.fees_collected = {str(a): int(v) for a, v in e["fees_collected"].items()}
    eng.fees._volume = {
        str(a): {int(d): int(v) for d, v in days.items()} for a, days in e["fee_volume"].items()
    }
    eng.fees._cache.clear()
