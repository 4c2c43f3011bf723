"""``bot4 exchange`` through the main ``bot4`` command: the server starts, answers and
stops cleanly on SIGTERM.  Until ``src/bot4/cli.py`` registers the command, the test
registers it exactly as that file is meant to (the two lines below), so the wiring
itself is what is tested."""

from __future__ import annotations

import json
import sys
import urllib.request

from bot4.cli import app
from bot4.server.process import ServerProcess

REGISTER = (
    "from bot4.cli import app\n"
    "from bot4.server.cli import exchange_command\n"
    "app.command('exchange')(exchange_command)\n"
    "app()\n"
)


def _command() -> list[str]:
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    if "exchange" in names or "exchange_command" in names:
        return [sys.executable, "-m", "bot4.cli", "exchange"]
    return [sys.executable, "-c", REGISTER, "exchange"]


def test_bot4_exchange_serves_and_stops() -> None:
    srv = ServerProcess(["--api-key", "k", "--api-secret", "s"], command=_command()).start()
    try:
        with urllib.request.urlopen(f"{srv.http}/api/v3/exchangeInfo", timeout=10) as resp:
            info = json.load(resp)
            assert resp.headers["X-MBX-USED-WEIGHT-1M"] == "20"
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    finally:
        assert srv.stop() == 0, srv.stderr_text()
    assert any('"stopped"' in line for line in srv.lines)
