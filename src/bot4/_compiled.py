"""Which compiled helpers are in use.

The simulator's hot loops, the risk engine's market state, the backtest's bar loop, the
trading state's event fold and the journal's event encoder have compiled versions
(Cython, built by ``pip install -e .``; see docs/sim.md, docs/risk.md, docs/backtest.md,
docs/core.md and docs/live.md) next to the pure-Python ones they are tested against.  A
module that is not built (an exotic platform, a source checkout without a build) falls
back to pure Python; ``BOT4_PURE_SIM=1`` in the environment forces the fallback
everywhere, to compare or to debug.  Each module's test file (``tests/test_*_compiled.py``)
fails first if that module is not in use, so a broken build cannot pass CI silently.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

FORCE_PURE = os.environ.get("BOT4_PURE_SIM", "") not in ("", "0")


def compiled(name: str, package: str = "bot4.sim") -> ModuleType | None:
    """``<package>.<name>`` if it is built and not switched off, else None."""
    if FORCE_PURE:
        return None
    try:
        return importlib.import_module(f"{package}.{name}")
    except ImportError:
        return None
