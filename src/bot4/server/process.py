"""Run ``bot4 exchange`` as a child process and point ccxt at it (tests, benchmarks).

``ServerProcess`` starts the server on a free port (``--port 0``; the server prints the
port it bound), waits until it listens, and stops it with SIGTERM (the graceful path
that writes the state file), killing it only if it does not exit in time.  Every wait is
bounded, so a broken server fails a test instead of hanging it.

``point_ccxt`` applies the client settings of binance-spot-subset.md to a ccxt binance
instance: spot only, no currency or margin endpoints, every URL on this server.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO, Any


class ServerProcess:
    """``python -m bot4.server ARGS --port 0`` as a context manager."""

    def __init__(
        self,
        args: Sequence[str],
        start_timeout: float = 30.0,
        host: str = "127.0.0.1",
        command: Sequence[str] | None = None,
        own_session: bool = False,
        tied: bool = False,
    ) -> None:
        """``command`` is what runs the server (default ``python -m bot4.server``; e.g.
        ``["bot4", "exchange"]`` once the command is registered).  ``own_session``: the
        server runs in its own session, out of the terminal's process group, so a Ctrl-C
        reaches only its owner -- which must then stop it (``stop``).  The paper
        command's embedded exchange needs it: the trader's Ctrl-C cancels its open
        orders *at that exchange* before stopping it.  ``tied``: the server stops (its
        state saved) when this process exits, however it exits: it gets
        ``--stop-on-stdin-eof`` and a pipe on stdin whose write end only this process
        holds, which the kernel closes when it dies, a kill -9 included."""
        self.own_session = own_session
        self.tied = tied
        self.args = [*args]
        self.command = [*command] if command is not None else [sys.executable, "-m", "bot4.server"]
        self.start_timeout = start_timeout
        self.host = host
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._stderr: IO[str] | None = None

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> ServerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cmd = [*self.command, "--host", self.host, "--port", "0", *self.args]
        if self.tied:
            cmd.append("--stop-on-stdin-eof")
        # stderr goes to a file: a pipe nobody reads would block the server once full
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if self.tied else None,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            start_new_session=self.own_session,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        while self.port == 0:
            line = _readline(self.proc.stdout, deadline - time.monotonic())
            if line is None:
                self.kill()
                raise RuntimeError(f"server did not start: {self.stderr_text()}")
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "listening":
                self.port = int(event["port"])
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (the state file is written); kill after ``timeout``."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.lines.extend(self.proc.stdout.read().splitlines())
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr_text(self) -> str:
        """The last 4000 characters the server wrote to stderr."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _readline(stream: IO[str], timeout: float) -> str | None:
    if timeout <= 0:
        return None
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
    finally:
        sel.close()
    line = stream.readline()
    return line or None


def point_ccxt(ex: Any, port: int, host: str = "127.0.0.1") -> Any:
    """Aim a ``ccxt.binance``/``ccxt.pro.binance`` instance at a local server."""
    rest = f"http://{host}:{port}/api/v3"
    ex.urls["api"]["public"] = rest
    ex.urls["api"]["private"] = rest
    ws = ex.urls["api"].get("ws")
    if ws is not None:  # ccxt.pro only
        ws["spot"] = f"ws://{host}:{port}/ws"
        ws["ws-api"]["spot"] = f"ws://{host}:{port}/ws-api/v3"
    return ex


def ccxt_options(api_key: str, secret: str, **extra: Any) -> dict[str, Any]:
    """The constructor settings that keep ccxt on spot and on one host."""
    options = {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    }
    options.update(extra.pop("options", {}))
    return {"apiKey": api_key, "secret": secret, "options": options, **extra}
