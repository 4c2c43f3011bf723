"""Order management: lifecycle book-keeping, linked orders, positions, balances,
idempotency, and the event journal with replay."""
