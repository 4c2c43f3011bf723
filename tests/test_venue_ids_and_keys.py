"""Who bot4 is at a venue: client ids on venues with stricter rules than Binance (sent
unchanged where the venue takes them, as a UUID5 where it does not, every report read
back under bot4's name, including the ask-before-resend search), and API keys rotated
while running (reloaded from their source, the refused order sent again once)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import ccxt
import pytest

from bot4.venues.ccxt_config import Credentials
from bot4.venues.client_ids import ClientIdCodec
from tests.test_live_units import FakeExchange, _place, _setup

OKX_RULE = re.compile(r"^[A-Za-z0-9]{1,32}$")


@pytest.mark.parametrize(
    ("exchange", "cid", "unchanged"),
    [
        ("binance", "B4lx8k2m3p-17", True),
        ("binance", "my.id:1/2", True),
        ("bybit", "B4lx8k2m3p-17-SL", True),
        ("bybit", "my.id", False),
        ("okx", "B4lx8k2m3p-17", False),
        ("okx", "B4lx8k2m3p17", True),
        ("kraken", "B4lx8k2m3p-17-SL", False),
        ("coinbase", "B4lx8k2m3p-17-TP", True),
        ("someotherexchange", "B4-1", True),
    ],
)
def test_sent_names_follow_each_venues_rules(exchange: str, cid: str, unchanged: bool) -> None:
    codec = ClientIdCodec(exchange)
    sent = codec.encode(cid)
    assert (sent == cid) is unchanged
    if not unchanged:
        assert re.fullmatch(r"[0-9a-f]{32}", sent)  # a short UUID: valid on all of them
    assert codec.decode(sent) == cid
    # a restarted process sends the same name and, having learnt the journal's ids,
    # reads the venue's reports back under bot4's name
    again = ClientIdCodec(exchange)
    again.learn([cid])
    assert again.encode(cid) == sent and again.decode(sent) == cid
    assert codec.decode("not-ours") == "not-ours"


class FakeOkx(FakeExchange):
    """The scripted exchange of the unit tests with OKX's client-id rule."""

    id = "okx"

    async def create_order(self, *args: Any) -> dict[str, Any]:
        cid = args[5]["clientOrderId"]
        if not OKX_RULE.match(cid):
            raise ccxt.InvalidOrder(f'okx {{"code":"51000","msg":"clOrdId {cid} error"}}')
        return await super().create_order(*args)

    async def fetch_order(self, _id: Any, _sym: str, params: dict[str, Any]) -> dict[str, Any]:
        info = self.orders.get(params["clientOrderId"])
        if info is None:
            raise ccxt.OrderNotFound("okx 51603")
        return {"info": info, "id": str(info["orderId"]), "clientOrderId": info["clientOrderId"],
                "status": "open", "filled": 0}  # fmt: skip


@pytest.mark.parametrize("fault", ["", "timeout-after"])
def test_an_okx_order_is_placed_and_found_under_its_sent_name(fault: str) -> None:
    async def go() -> tuple[str, str, FakeOkx]:
        fake = FakeOkx()
        fake.script = [fault]
        om, venue = _setup(fake)
        cid = await _place(om, venue)
        return cid, om.state.orders[cid].status.value, fake

    cid, status, fake = asyncio.run(go())
    assert status == "ACCEPTED" and fake.creates == 1  # found by its name: not resent
    (sent,) = fake.orders
    assert OKX_RULE.match(sent) and sent != cid
    assert ClientIdCodec("okx").encode(cid) == sent


class RotatingKeys(FakeExchange):
    """A venue whose account key was rotated: requests signed with the old one are
    refused with Binance's -2015 (ccxt AuthenticationError), before anything executes."""

    def __init__(self) -> None:
        super().__init__()
        self.apiKey, self.secret = "old-key", "old-secret"
        self.logger = logging.getLogger("bot4.test.rotating")

    async def create_order(self, *args: Any) -> dict[str, Any]:
        if self.apiKey != "new-key":
            self.creates += 1
            raise ccxt.AuthenticationError('binance {"code":-2015,"msg":"Invalid API-key"}')
        return await super().create_order(*args)


@pytest.mark.parametrize("rotated", [True, False])
def test_rotated_credentials_are_reloaded_and_the_order_retried_once(rotated: bool) -> None:
    async def go() -> tuple[str, FakeExchange, Any]:
        fake = RotatingKeys()
        om, venue = _setup(fake)
        new = (
            Credentials("new-key", "new-secret")
            if rotated
            else Credentials("old-key", "old-secret")
        )
        venue.secrets = ("old-key", "old-secret")
        venue.reload_credentials = lambda: new
        cid = await _place(om, venue)
        return om.state.orders[cid].status.value, fake, venue

    status, fake, venue = asyncio.run(go())
    if rotated:
        # refused once with the old key, sent again once with the reloaded one
        assert status == "ACCEPTED" and fake.creates == 2 and len(fake.orders) == 1
        assert fake.apiKey == "new-key" and venue.stats["reauthenticated"] == 1
    else:
        # nothing new to load: the refusal stands and the kill switch stops new risk
        assert status == "REJECTED" and fake.creates == 1 and not fake.orders
        assert venue.risk.kill_switch.tripped
