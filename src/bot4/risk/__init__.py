"""Risk: pre-trade checks at the single entry of the order path, the trading state,
the kill switch, circuit breakers, position sizing and value at risk."""
