"""Which compiled helpers are in use.

The simulator's hot loops have compiled versions (Cython, built by ``pip install -e .``;
see docs/sim.md) next to the pure-Python ones they are tested against.  A module that
is not built (an exotic platform, a source checkout without a build) falls back to pure
Python; ``BOT4_PURE_SIM=1`` in the environment forces the fallback, to compare or to
debug.  ``tests/test_sim_compiled.py`` fails if the compiled modules are not in use, so
a broken build cannot pass CI silently.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

FORCE_PURE = os.environ.get("BOT4_PURE_SIM", "") not in ("", "0")


def compiled(name: str) -> ModuleType | None:
    """``bot4.sim.<name>`` if it is built and not switched off, else None."""
    if FORCE_PURE:
        return None
    try:
        return importlib.import_module(f"bot4.sim.{name}")
    except ImportError:
        return None
