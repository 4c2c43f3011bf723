"""The kernel: message bus, per-symbol sequencing, wiring for backtest / paper / live."""
