"""Binance's request rules, in process: number formats, parameters, signatures,
timestamps, weights, bans and order counts (time moved by a test clock, no sleeping)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.core.clock import TestClock
from bot4.core.enums import OrderSide
from bot4.core.errors import ValidationError
from bot4.server.auth import Authenticator, Credential, strip_signature
from bot4.server.formats import fmt_money, fmt_raw
from bot4.server.limits import OrderLimiter, WeightLimiter
from bot4.server.market_data import K_CLOSE, K_OPEN_MS, K_VOL, SymbolMarket, bucket_start
from bot4.server.params import Params, parse_pairs
from bot4.sim.errors import BinanceError
from bot4.sim.matching_types import Trade

NOW_MS = 1_747_699_200_000
SECRET = b"s3cret"


def _code(fn: object, *args: object) -> int:
    try:
        fn(*args)  # type: ignore[operator]
    except BinanceError as exc:
        return exc.code
    raise AssertionError("no BinanceError")


# -- formats ----------------------------------------------------------------------------


@given(st.integers(-(10**30), 10**30))
def test_formats_are_exact(raw: int) -> None:
    exact = Context(prec=200)  # Decimal's default context would round at 28 digits
    assert Decimal(fmt_raw(raw)) == Decimal(raw).scaleb(-9, exact)
    assert Decimal(fmt_money(raw)) == Decimal(raw).scaleb(-18, exact)
    assert len(fmt_raw(raw).split(".")[1]) >= 8


def test_formats_look_like_binance() -> None:
    assert fmt_raw(61_737_630_000_000) == "61737.63000000"
    assert fmt_raw(0) == "0.00000000"
    assert fmt_raw(1) == "0.000000001"  # never rounded away
    assert fmt_money(6_183_763 * 10**11) == "0.61837630"


# -- parameters --------------------------------------------------------------------------


def _params(raw: str) -> Params:
    return Params(parse_pairs(raw.encode()))


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("price=1e5", -1100),
        ("price=-1", -1100),
        ("price=" + "9" * 21, -1100),  # Binance's pattern allows 20 integer digits
        ("price=%D9%A1", -1100),  # an Arabic-Indic digit
        ("price=1.123456789", -1111),  # more decimals than the asset precision
        ("price=", -1105),
        ("price=1&price=2", -1101),
    ],
)
def test_decimal_parameters_follow_binance_patterns(raw: str, code: int) -> None:
    assert _code(lambda: _params(raw).decimal_raw("price")) == code


def test_parameters_parse_exactly() -> None:
    p = _params("price=61737.63&quantity=0.00100000&orderId=42")
    assert p.decimal_raw("price") == 61_737_630_000_000
    assert p.decimal_raw("quantity") == 1_000_000
    assert p.integer("orderId") == 42
    p.finish()
    extra = _params("symbol=BTCUSDT&foo=1")
    extra.get("symbol")
    assert _code(extra.finish) == -1104
    assert _code(lambda: _params("orderId=-1").integer("orderId")) == -1100
    assert _code(lambda: _params("orderId=" + "9" * 20).integer("orderId")) == -1100
    assert _code(lambda: _params("symbol=btc%2Fusdt").symbol({"BTCUSDT": 1})) == -1100
    assert _code(lambda: _params("symbol=FOOBAR").symbol({"BTCUSDT": 1})) == -1121
    assert _code(lambda: _params("newClientOrderId=h%C3%A9").client_id("newClientOrderId")) == -1100
    assert _code(lambda: parse_pairs(b"a=%ff")) == -1100  # not UTF-8
    assert _code(lambda: parse_pairs("a=é".encode())) == -1100  # raw non-ASCII byte
    assert _code(lambda: parse_pairs(b"&".join(b"k%d=1" % i for i in range(100)))) == -1101


# -- signatures and time ------------------------------------------------------------------


@pytest.fixture
def auth() -> tuple[Authenticator, TestClock]:
    clock = TestClock(NOW_MS * 1_000_000)
    return Authenticator([Credential("KEY", SECRET, "alice")], clock), clock


def _signed(payload: str) -> str:
    sig = hmac.new(SECRET, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}&signature={sig}"


def _verify(a: Authenticator, key: str | None, query: str, body: str = "") -> Credential:
    params = Params(parse_pairs(query.encode()) + parse_pairs(body.encode()))
    return a.verify_rest(key, query.encode(), body.encode(), params)


def test_rest_signature_is_checked_on_the_raw_string(
    auth: tuple[Authenticator, TestClock],
) -> None:
    a, _ = auth
    q = f"symbol=BTCUSDT&newClientOrderId=a%2Fb&timestamp={NOW_MS}&recvWindow=10000"
    assert _verify(a, "KEY", _signed(q)).account == "alice"
    assert _verify(a, "KEY", "", _signed(q)).account == "alice"  # POST: the form body
    # the same values percent-encoded differently: not what was signed
    other = _signed(q).replace("a%2Fb", "a/b")
    assert _code(_verify, a, "KEY", other) == -1022
    assert _code(_verify, a, "KEY", _signed(q)[:-1] + "0") in (-1022,)
    assert _code(_verify, a, "KEY", q) == -1102  # no signature at all
    assert _code(_verify, a, "NOPE", _signed(q)) == -2015
    assert _code(_verify, a, None, _signed(q)) == -2014
    assert _code(_verify, a, "KEY", _signed(q) + "&signature=00") == -1101


def test_timestamps_and_recv_window(auth: tuple[Authenticator, TestClock]) -> None:
    a, clock = auth
    old = _signed(f"timestamp={NOW_MS - 10_001}&recvWindow=10000")
    assert _code(_verify, a, "KEY", old) == -1021
    assert _verify(a, "KEY", _signed(f"timestamp={NOW_MS - 9_999}&recvWindow=10000"))
    ahead = _signed(f"timestamp={NOW_MS + 1_001}")
    assert _code(_verify, a, "KEY", ahead) == -1021
    assert _code(_verify, a, "KEY", _signed(f"timestamp={NOW_MS}&recvWindow=60001")) == -1131
    default_window = _signed(f"timestamp={NOW_MS - 5_001}")  # Binance's default: 5000
    assert _code(_verify, a, "KEY", default_window) == -1021
    clock.advance(10**12)
    assert _code(_verify, a, "KEY", _signed(f"timestamp={NOW_MS}&recvWindow=60000")) == -1021


def test_bad_signature_is_reported_before_a_stale_timestamp(
    auth: tuple[Authenticator, TestClock],
) -> None:
    a, _ = auth
    stale_and_unsigned = f"timestamp={NOW_MS - 10**6}&signature=" + "0" * 64
    assert _code(_verify, a, "KEY", stale_and_unsigned) == -1022


def test_ws_api_signature_uses_sorted_unencoded_params(
    auth: tuple[Authenticator, TestClock],
) -> None:
    a, _ = auth
    params: dict[str, object] = {"apiKey": "KEY", "timestamp": NOW_MS, "recvWindow": 10000}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(SECRET, payload.encode(), hashlib.sha256).hexdigest()
    assert a.verify_ws(params).account == "alice"
    assert _code(a.verify_ws, {**params, "recvWindow": 9999}) == -1022
    assert _code(a.verify_ws, {**params, "apiKey": "X"}) == -2015
    assert _code(a.verify_ws, {**params, "timestamp": [1]}) == -1100


def test_strip_signature_keeps_the_rest_verbatim() -> None:
    assert strip_signature(b"a=1&signature=ab&b=%2F") == (b"a=1&b=%2F", b"ab")
    assert strip_signature(b"a=1") == (b"a=1", None)


# -- weights and bans -----------------------------------------------------------------------


def test_weight_limit_then_429_then_418_ban() -> None:
    clock = TestClock(NOW_MS * 1_000_000)
    lim = WeightLimiter(clock, limit=100, ban_after=3, ban_seconds=120)
    statuses = [lim.charge("1.2.3.4", 10).status for _ in range(15)]
    assert statuses == [200] * 10 + [429, 429, 429, 418, 418]
    d = lim.charge("1.2.3.4", 1)
    assert d.status == 418 and 119 <= d.retry_after_s <= 120 and d.code == -1003
    assert lim.charge("5.6.7.8", 10).status == 200  # per IP
    clock.advance(121 * 10**9)
    assert lim.charge("1.2.3.4", 10).status == 200  # the ban is over, a new window
    for _ in range(9):
        lim.charge("1.2.3.4", 10)
    for _ in range(3):
        assert lim.charge("1.2.3.4", 10).status == 429
    d = lim.charge("1.2.3.4", 10)
    assert d.status == 418 and d.retry_after_s > 120  # the second ban is longer


def test_429_carries_retry_after_to_the_next_minute_and_backing_off_clears() -> None:
    clock = TestClock((NOW_MS + 45_000) * 1_000_000)  # 15 s before the minute ends
    lim = WeightLimiter(clock, limit=10, ban_after=3)
    assert lim.charge("ip", 10).status == 200
    d = lim.charge("ip", 1)
    assert d.status == 429 and d.retry_after_s == 15 and d.used == 10
    clock.advance(15 * 10**9)
    assert lim.charge("ip", 10).status == 200  # new window
    clock.advance(60 * 10**9)  # a quiet minute: strikes forgotten
    assert lim.charge("ip", 10).status == 200
    for _ in range(3):
        assert lim.charge("ip", 1).status == 429
    assert lim.charge("ip", 1).status == 418


def test_order_count_limits() -> None:
    clock = TestClock(NOW_MS * 1_000_000)
    lim = OrderLimiter(clock, per_10s=3, per_day=5)
    assert [lim.charge("a").status for _ in range(4)] == [200, 200, 200, 429]
    assert lim.charge("a").code == -1015
    assert lim.charge("b").status == 200
    clock.advance(10 * 10**9)
    assert [lim.charge("a").status for _ in range(3)] == [200, 200, 429]  # the day's limit
    assert "1 DAY" in lim.charge("a").msg


# -- klines ----------------------------------------------------------------------------


def _trade(tid: int, ms: int, price: int, qty: int = 10**6) -> Trade:
    return Trade(tid, "BTCUSDT", price, qty, price * qty, ms * 10**6, OrderSide.BUY, 1, 2, "a", "b")


def test_klines_fold_minutes_and_fill_gaps() -> None:
    m = SymbolMarket("BTCUSDT")
    t0 = NOW_MS  # a day boundary
    m.add_trade(_trade(1, t0 + 1_000, 100))
    m.add_trade(_trade(2, t0 + 61_000, 110))
    m.add_trade(_trade(3, t0 + 4 * 60_000, 90))
    rows = m.klines("1m", None, None, 10, t0 + 5 * 60_000)
    assert [r[K_OPEN_MS] - t0 for r in rows] == [i * 60_000 for i in range(6)]
    assert [r[K_CLOSE] for r in rows] == [100, 110, 110, 110, 90, 90]
    assert [r[K_VOL] for r in rows] == [10**6, 10**6, 0, 0, 10**6, 0]
    five = m.klines("5m", None, None, 10, t0 + 5 * 60_000)
    assert [r[K_OPEN_MS] - t0 for r in five] == [0, 300_000]
    assert five[0][K_VOL] == 3 * 10**6 and five[0][K_CLOSE] == 90
    assert m.klines("1m", t0 + 120_000, None, 2, t0 + 5 * 60_000)[0][K_OPEN_MS] == t0 + 120_000
    assert len(m.klines("1m", None, None, 3, t0 + 5 * 60_000)) == 3


def test_kline_buckets_match_binance_calendars() -> None:
    ts = int(datetime(2025, 5, 21, 13, 7, tzinfo=UTC).timestamp() * 1000)  # a Wednesday
    assert bucket_start(ts, "1w") == int(datetime(2025, 5, 19, tzinfo=UTC).timestamp() * 1000)
    assert bucket_start(ts, "1M") == int(datetime(2025, 5, 1, tzinfo=UTC).timestamp() * 1000)
    assert bucket_start(ts, "4h") == int(datetime(2025, 5, 21, 12, tzinfo=UTC).timestamp() * 1000)


# -- configuration -----------------------------------------------------------------------


def test_config_merges_flags_and_file() -> None:
    from bot4.server.config import AccountSpec, ServerConfig, build_config, parse_balances

    assert parse_balances("usdt=1,BTC=0.5,USDT=2") == {"USDT": Decimal(3), "BTC": Decimal("0.5")}
    main = AccountSpec("main", "k", "s", {"USDT": Decimal(1)})
    cfg = build_config(
        ServerConfig(),
        ["BTCUSDT", "SOLBTC"],
        main,
        {
            "accounts": [{"name": "b", "api_key": "k2", "api_secret": "s2",
                          "balances": {"btc": "1"}, "taker_fee": "0.002"}],
            "symbols": {"BTCUSDT": {"min_qty": "0.001"}},
            "market_maker": {"interval_ms": 20, "trade_probability": "0.5"},
            "limits": {"weight_per_minute": 10},
        },
    )  # fmt: skip
    assert [s.symbol for s in cfg.symbols] == ["BTCUSDT", "SOLBTC"]
    assert cfg.symbols[0].min_qty == Decimal("0.001") and cfg.symbols[1].quote == "BTC"
    assert cfg.accounts[1].balances == {"BTC": Decimal(1)}
    assert cfg.maker.interval_ms == 20 and cfg.limits.weight_per_minute == 10
    bad_tables: list[dict[str, object]] = [
        {"symbols": {"BTCUSDT": {"min_qty": 0.5}}},  # a binary float
        {"symbols": {"BTCUSDT": {"tick_size": "0.0000000001"}}},  # finer than 1e-9
        {"market_maker": {"levels": 5}},  # fewer than 20 levels a side
        {"limits": {"weight": 1}},  # unknown setting
        {"accounts": [{"name": "main", "api_key": "x", "api_secret": "y"}]},  # duplicate
        {"accounts": [{"name": "__market_maker__", "api_key": "x", "api_secret": "y"}]},
        {"surprise": {}},
    ]
    for table in bad_tables:
        with pytest.raises(ValidationError):
            build_config(ServerConfig(), ["BTCUSDT"], main, table)
    with pytest.raises(ValidationError):
        build_config(ServerConfig(), ["NOQUOTE"], main, None)
