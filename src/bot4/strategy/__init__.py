"""The Strategy base class, incremental indicators, and the strategy-facing API that is
the same in backtest, paper and live."""
