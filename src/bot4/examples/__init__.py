"""Example strategies that ship with bot4."""
