"""Domain types: exact numbers, instruments, orders, events, errors, clocks."""
