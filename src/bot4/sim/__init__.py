"""The exchange simulator: matching engine, fee, fill and latency models, and book
builders from real market data feeds."""
