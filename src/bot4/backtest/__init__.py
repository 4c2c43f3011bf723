"""Backtests: the runner that drives the engine over historical data, metrics, reports."""
