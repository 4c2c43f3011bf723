"""Paper and live trading: the backtest's order path with a wall clock, market data
from a venue and the ccxt adapter (``bot4 paper`` / ``bot4 live``)."""
