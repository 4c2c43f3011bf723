"""Builds the simulator's compiled helpers (Cython; see docs/sim.md) during
``pip install``.  Everything else is in pyproject.toml."""

from __future__ import annotations

from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = [
    Extension("bot4.sim._fastbook", ["src/bot4/sim/_fastbook.pyx"]),
    Extension("bot4.sim._fastmatch", ["src/bot4/sim/_fastmatch.pyx"]),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": 3},
        quiet=True,
    )
)
