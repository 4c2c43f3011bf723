"""Builds bot4's compiled helpers (Cython) during ``pip install``: the simulator's book
and matching core (docs/sim.md), the risk engine's market state (docs/risk.md), the
backtest's per-bar loop (docs/backtest.md), the trading state's event fold
(docs/core.md) and the journal's event encoder (docs/live.md).  Everything else is in
pyproject.toml.

The extensions are ``optional``: where they cannot be compiled (no C compiler), the
install still succeeds and bot4 runs the pure-Python code, which is the reference the
compiled code is tested against (``BOT4_PURE_SIM=1`` forces it).  CI cannot pass that
way by accident: ``tests/test_sim_compiled.py``, ``tests/test_risk_market_compiled.py``,
``tests/test_backtest_compiled.py``, ``tests/test_oms_compiled.py`` and
``tests/test_codec_compiled.py`` fail when the compiled modules are not in use."""

from __future__ import annotations

from Cython.Build import cythonize
from setuptools import Extension, setup

# No fused multiply-adds where floats must round exactly as Python rounds them.
EXACT_FLOATS = ["-ffp-contract=off"]

EXTENSIONS = [
    Extension("bot4.sim._fastbook", ["src/bot4/sim/_fastbook.pyx"], optional=True),
    Extension("bot4.sim._fastmatch", ["src/bot4/sim/_fastmatch.pyx"], optional=True),
    Extension(
        "bot4.risk._fastmarket",
        ["src/bot4/risk/_fastmarket.pyx"],
        optional=True,
        extra_compile_args=EXACT_FLOATS,
    ),
    Extension(
        "bot4.backtest._fastloop",
        ["src/bot4/backtest/_fastloop.pyx"],
        optional=True,
        extra_compile_args=EXACT_FLOATS,
    ),
    Extension("bot4.oms._fastfold", ["src/bot4/oms/_fastfold.pyx"], optional=True),
    Extension("bot4.oms._fastcodec", ["src/bot4/oms/_fastcodec.pyx"], optional=True),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": 3},
        quiet=True,
    )
)
