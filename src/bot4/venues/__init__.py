"""Venues: the port every order leaves through, its adapters (simulator, ccxt), rate
limits, error mapping and reconnects."""
