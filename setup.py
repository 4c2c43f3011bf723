"""Builds the simulator's compiled helpers (Cython; see docs/sim.md) and the
backtest's compiled per-bar loop (docs/backtest.md) during ``pip install``.
Everything else is in pyproject.toml.

The extensions are ``optional``: where they cannot be compiled (no C compiler), the
install still succeeds and bot4 runs the pure-Python simulator, which is the same code
the compiled one is tested against.  CI cannot pass that way by accident:
``tests/test_sim_compiled.py`` and ``tests/test_backtest_compiled.py`` fail when the
compiled modules are not in use."""

from __future__ import annotations

from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = [
    Extension("bot4.sim._fastbook", ["src/bot4/sim/_fastbook.pyx"], optional=True),
    Extension("bot4.sim._fastmatch", ["src/bot4/sim/_fastmatch.pyx"], optional=True),
    Extension(
        "bot4.backtest._fastloop",
        ["src/bot4/backtest/_fastloop.pyx"],
        extra_compile_args=["-ffp-contract=off"],  # products rounded as Python rounds them
        optional=True,
    ),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": 3},
        quiet=True,
    )
)
