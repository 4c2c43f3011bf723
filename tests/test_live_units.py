"""The adapter's pieces without a server: exact market and report parsing, backoff,
credentials, and the unknown-outcome rules against a scripted fake exchange (the
server-backed tests are test_live_e2e.py, test_live_chaos.py, test_live_cli.py)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from bot4.core.clock import LiveClock
from bot4.core.enums import LiquiditySide, OrderSide, OrderType
from bot4.core.errors import ValidationError
from bot4.live.runner import journal_prefix
from bot4.oms.manager import OrderManager
from bot4.oms.requests import OrderRequest
from bot4.risk.engine import RiskEngine
from bot4.risk.profile import RiskProfile
from bot4.venues.backoff import Backoff
from bot4.venues.ccxt_config import (
    Credentials,
    RedactFilter,
    VenueConfig,
    make_client,
    redact,
)
from bot4.venues.ccxt_parse import (
    VenueStatus,
    instrument_from_market,
    parse_balances,
    parse_fill,
    parse_order,
)
from bot4.venues.ccxt_venue import CcxtVenue
from bot4.venues.ccxt_wire import is_connect_failure, plain
from bot4.venues.rate_limit import LimiterRegistry
from tests.conftest import btcusdt

BINANCE_MARKET = {
    "symbol": "BTC/USDT",
    "base": "BTC",
    "quote": "USDT",
    "spot": True,
    "precision": {"price": 0.01, "amount": 1e-05},
    "limits": {},
    "info": {
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": "0.01000000", "minPrice": "0.01"},
            {"filterType": "LOT_SIZE", "stepSize": "0.00001000", "minQty": "0.00001000",
             "maxQty": "9000.00000000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000"},
        ]
    },
}  # fmt: skip


def test_instruments_from_binance_filters_and_from_ccxt_precision() -> None:
    inst = instrument_from_market(BINANCE_MARKET, 4)
    assert inst == btcusdt()
    generic = {
        "symbol": "ETH/EUR",
        "base": "ETH",
        "quote": "EUR",
        "precision": {"price": 0.1, "amount": 0.0001},
        "limits": {"amount": {"min": 0.001, "max": None}, "cost": {"min": 10, "max": None}},
        "info": {},
    }
    eth = instrument_from_market(generic, 4)
    assert (eth.symbol, eth.tick_raw, eth.step_raw) == ("ETHEUR", 10**8, 10**5)
    assert eth.min_qty_raw == 10**6 and eth.max_qty_raw == 0
    places = instrument_from_market({**generic, "precision": {"price": 2, "amount": 4}}, 2)
    assert (places.tick_raw, places.step_raw) == (10**7, 10**5)
    with pytest.raises(ValidationError):
        instrument_from_market({**generic, "precision": {"price": 5, "amount": 4}}, 3)


def test_reports_are_read_exactly_from_the_venue_payload() -> None:
    created = {
        "id": "7",
        "info": {
            "orderId": 7, "clientOrderId": "B4x-1", "status": "FILLED",
            "executedQty": "0.00300000", "transactTime": 1,
            "fills": [{"price": "60000.01000000", "qty": "0.00300000",
                       "commission": "0.00000300", "commissionAsset": "BTC", "tradeId": 11}],
        },
    }  # fmt: skip
    vo = parse_order(created)
    assert vo.status is VenueStatus.FILLED and vo.filled == Decimal("0.003")
    (f,) = vo.fills
    assert (f.trade_id, f.price, f.fee, f.fee_asset) == ("11", Decimal("60000.01"),
                                                          Decimal("0.000003"), "BTC")  # fmt: skip
    canceled = parse_order({"info": {"orderId": 8, "origClientOrderId": "B4x-2",
                                     "clientOrderId": "cancel-8", "status": "CANCELED",
                                     "executedQty": "0"}})  # fmt: skip
    assert canceled.client_order_id == "B4x-2" and canceled.status is VenueStatus.CANCELED
    ws = {"info": {"e": "executionReport", "i": 9, "c": "B4x-3", "C": "", "X": "PARTIALLY_FILLED",
                   "z": "0.1", "t": 12, "l": "0.1", "L": "59999.99", "n": "0.05999999",
                   "N": "USDT", "m": True, "T": 5}}  # fmt: skip
    assert parse_order(ws).status is VenueStatus.OPEN
    fill = parse_fill(ws)
    assert (fill.client_order_id, fill.qty, fill.price, fill.fee) == (
        "B4x-3", Decimal("0.1"), Decimal("59999.99"), Decimal("0.05999999"))  # fmt: skip
    assert fill.liquidity is LiquiditySide.MAKER
    generic = parse_fill({"id": "a", "order": "b", "amount": 0.1, "price": 0.3,
                          "fee": {"cost": 1e-8, "currency": "EUR"}})  # fmt: skip
    assert (generic.qty, generic.price, generic.fee) == (Decimal("0.1"), Decimal("0.3"),
                                                         Decimal("1E-8"))  # fmt: skip
    bal = parse_balances({"info": {"balances": [{"asset": "BTC", "free": "1.1", "locked": "0"}]}})
    assert bal == {"BTC": (Decimal("1.1"), Decimal(0))}
    assert plain(Decimal("1E-5")) == "0.00001" and plain(Decimal("60000.10")) == "60000.1"


def test_backoff_is_seeded_bounded_and_grows() -> None:
    a, b = Backoff(0.05, 1.0, seed=9), Backoff(0.05, 1.0, seed=9)
    seq = [a.next_delay() for _ in range(10)]
    assert seq == [b.next_delay() for _ in range(10)]
    for n, d in enumerate(seq):
        step = min(1.0, 0.05 * 2**n)
        assert step / 2 <= d <= step
    a.reset()
    assert a.next_delay() <= 0.05


def test_credentials_stay_hidden(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    creds = Credentials("key-123", "secret-456")
    assert "secret-456" not in repr(creds) and "key-123" not in str(creds)
    assert "secret-456" not in repr(VenueConfig(credentials=creds))
    env = {"BOT4_KRAKEN_API_KEY": "k", "BOT4_KRAKEN_SECRET": "s"}
    assert Credentials.from_env("kraken", env).values() == ("k", "s")
    outside = tmp_path / "keys.toml"
    outside.write_text('[okx]\napi_key = "a"\nsecret = "b"\npassword = "c"\n')
    assert Credentials.from_file(outside, "okx").values() == ("a", "b", "c")
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    inside = tmp_path / "repo" / "keys.toml"
    inside.write_text(outside.read_text())
    with pytest.raises(ValidationError, match="outside any git repository"):
        Credentials.from_file(inside, "okx")
    assert redact("GET /x?signature=abc key-123", creds.values()) == "GET /x?<query> <redacted>"
    log = logging.getLogger("bot4.test.redact")
    log.addFilter(RedactFilter(creds.values()))
    with caplog.at_level(logging.DEBUG, "bot4.test.redact"):
        log.debug("headers %s", {"X-MBX-APIKEY": "key-123"})
    assert "key-123" not in caplog.text and "<redacted>" in caplog.text


def test_client_for_each_named_venue_is_built() -> None:
    for name in ("binance", "kraken", "coinbase", "okx", "bybit"):
        client = make_client(VenueConfig(name, Credentials("k", "s", "p")))
        assert client.id == name and client.enableRateLimit is False
        asyncio.run(client.close())
    with pytest.raises(ValidationError):
        make_client(VenueConfig("no-such-exchange"))


def test_journal_prefix_is_deterministic_and_a_valid_client_id() -> None:
    p = journal_prefix(1_795_244_000_000_000_000)
    assert p == journal_prefix(1_795_244_000_000_999_999) and p.startswith("B4")
    assert len(f"{p}-123456") <= 36


# -- unknown outcomes against a scripted exchange -------------------------------------------


class FakeExchange:
    """Just enough of a ccxt binance: a book of orders by client id, and a script of
    faults for the next create calls."""

    id = "binance"
    rateLimit = 50

    def __init__(self) -> None:
        self.has: dict[str, bool] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.script: list[str] = []  # per create: "" ok, "timeout-after", "refused", ...
        self.creates = 0
        self.last_response_headers: dict[str, str] = {}

    async def create_order(self, *args: Any) -> dict[str, Any]:
        self.creates += 1
        cid = args[5]["clientOrderId"]
        fault = self.script.pop(0) if self.script else ""
        if fault == "refused":
            raise ccxt.ExchangeNotAvailable("Cannot connect to host 127.0.0.1:1")
        if fault == "timeout-before":
            raise ccxt.RequestTimeout("binance POST order timed out")
        if fault == "insufficient":
            raise ccxt.InsufficientFunds('binance {"code":-2010}')
        if cid in self.orders:
            raise ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')
        info = {"orderId": len(self.orders) + 1, "clientOrderId": cid, "status": "NEW",
                "executedQty": "0", "fills": []}  # fmt: skip
        self.orders[cid] = info
        if fault == "timeout-after":
            raise ccxt.RequestTimeout("binance POST order timed out")
        return {"info": info}

    async def fetch_order(self, _id: Any, _sym: str, params: dict[str, Any]) -> dict[str, Any]:
        info = self.orders.get(params["origClientOrderId"])
        if info is None:
            raise ccxt.OrderNotFound("binance -2013")
        return {"info": info}


def _setup(fake: FakeExchange, recv_window_ms: int = 300) -> tuple[OrderManager, CcxtVenue]:
    om = OrderManager([btcusdt()], clock=LiveClock())
    om.deposit("USDT", "100000")
    risk = RiskEngine(om, RiskProfile.default().with_limits(require_stop_loss=False))
    risk.update_price("BTCUSDT", "60000")
    venue = CcxtVenue(
        fake, om, risk, {"BTCUSDT": "BTC/USDT"}, registry=LimiterRegistry(),
        recv_window_ms=recv_window_ms,
    )  # fmt: skip
    venue.connected.set()
    venue.ready.set()
    return om, venue


async def _place(om: OrderManager, venue: CcxtVenue) -> str:
    req = OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.001", price="59000")
    cid = om.submit(req).client_order_id
    venue.dispatch(om.outbox.popleft())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not venue.inflight and not venue.resolvers:
            break
    return cid


@pytest.mark.parametrize(
    ("fault", "creates", "status", "resent"),
    [
        ("", 1, "ACCEPTED", 0),
        ("timeout-after", 1, "ACCEPTED", 0),  # the venue has it: found, never resent
        ("timeout-before", 2, "ACCEPTED", 1),  # provably absent after the window: resent
        ("refused", 1, "SUBMITTED", 0),  # never left: deferred to the next connection
        ("insufficient", 1, "REJECTED", 0),
    ],
)
def test_unknown_outcomes_are_resolved_by_client_id(
    fault: str, creates: int, status: str, resent: int
) -> None:
    async def go() -> tuple[str, CcxtVenue, FakeExchange]:
        fake = FakeExchange()
        fake.script = [fault]
        om, venue = _setup(fake)
        cid = await _place(om, venue)
        return om.state.orders[cid].status.value, venue, fake

    got, venue, fake = asyncio.run(go())
    assert (got, fake.creates, venue.stats["resent"]) == (status, creates, resent)
    assert len(fake.orders) == (0 if fault in ("refused", "insufficient") else 1)
    if fault == "refused":
        assert venue.deferred and not venue.unknown


def test_a_cancel_waits_for_the_search_and_nothing_is_resent() -> None:
    async def go() -> tuple[str, FakeExchange]:
        fake = FakeExchange()
        fake.script = ["timeout-before"]
        om, venue = _setup(fake, recv_window_ms=200)
        req = OrderRequest("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "0.001", price="59000")
        cid = om.submit(req).client_order_id
        venue.dispatch(om.outbox.popleft())
        await asyncio.sleep(0.05)  # the create failed; the search is running
        om.cancel(cid)
        venue.dispatch(om.outbox.popleft())
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not venue.inflight and not venue.resolvers:
                break
        return om.state.orders[cid].status.value, fake

    status, fake = asyncio.run(go())
    assert status == "CANCELED" and fake.creates == 1 and not fake.orders


def test_connect_failure_is_recognised_through_the_cause_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as inner:
            raise ccxt.NetworkError("binance GET") from inner
    except ccxt.NetworkError as exc:
        assert is_connect_failure(exc)
    assert not is_connect_failure(ccxt.RequestTimeout("timed out"))


# -- closed candles -> on_bar ------------------------------------------------------------------


class BarClient:
    """A stand-in client serving 1m candles from a list the test changes."""

    id = "binance"
    rateLimit = 50

    def __init__(self, rows: list[list[Any]]) -> None:
        self.has: dict[str, bool] = {}
        self.rows = rows

    def parse_timeframe(self, tf: str) -> int:
        assert tf == "1m"
        return 60

    async def fetch_ohlcv(self, *_args: Any) -> list[list[Any]]:
        return [list(r) for r in self.rows]


def test_closed_candles_reach_on_bar_once_each_in_order(tmp_path: Path) -> None:
    import time as _time

    from bot4.live.runner import LiveRunner, RunnerConfig
    from bot4.strategy.base import Bar, Strategy

    class Bars(Strategy):
        def on_start(self) -> None:
            self.seen: list[tuple[int, float, float | None]] = []
            self.ma = self.sma(2)

        def on_bar(self, bar: Bar) -> None:
            self.seen.append((bar.ts_ns, bar.close, self.ma.value))

    now_m = _time.time_ns() // 60_000_000_000 * 60_000  # this minute's open (ms)
    old = [[now_m - 180_000, 1, 2, 0.5, 1.5, 10], [now_m - 120_000, 1.5, 2, 1, 1.75, 5]]
    client = BarClient(old)

    async def go() -> list[Any]:
        cfg = RunnerConfig(
            VenueConfig("binance", Credentials("k", "s")), ["BTC/USDT"], Bars,
            journal_url=f"sqlite:///{tmp_path / 'j.db'}", bar_poll_s=0.01, status=False,
        )  # fmt: skip
        runner = LiveRunner(cfg)
        runner.wire(client, {"BTCUSDT": btcusdt()}, {"BTCUSDT": "BTC/USDT"}, [])
        runner.venue.ready.set()
        runner.started_ns = 1
        runner.strategy.on_start()
        task = asyncio.ensure_future(runner._bars())
        await asyncio.sleep(0.05)  # the first poll only learns where "now" is: no history
        newer = [now_m - 60_000, 1.75, 1.9, 1.7, 1.85, 2]  # closed at now_m
        forming = [now_m, 1.85, 1.9, 1.8, 1.9, 1]  # closes at now_m + 1 min: not a bar
        client.rows = [*old, newer, forming]
        await asyncio.sleep(0.05)  # several polls: the new bar once
        task.cancel()
        runner.journal.close()
        return list(runner.strategy.seen)  # type: ignore[attr-defined]

    seen = asyncio.run(go())
    assert seen == [((now_m - 60_000) * 1_000_000, 1.85, (1.75 + 1.85) / 2)]


def test_paper_symbols_are_parsed_and_refused_by_rule() -> None:
    import pytest

    from bot4.core.errors import ValidationError
    from bot4.live.config import parse_symbols

    assert parse_symbols(["btc/usdt", "ETH/USDT,BTC/USDT"]) == ["BTC/USDT", "ETH/USDT"]
    for bad in (["BTCUSDT"], ["BTC/"], [""], ["BTC/US-DT"]):
        with pytest.raises(ValidationError) as info:
            parse_symbols(bad)
        assert info.value.field == "symbol"
