"""bot4: automated crypto trading on one event-driven core.

The same strategy code runs in backtests, paper trading and live; every order passes
strategy -> risk engine -> order management -> venue.
"""

__version__ = "0.1.0"
