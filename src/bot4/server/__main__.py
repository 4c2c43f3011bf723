"""``python -m bot4.server``: the same as ``bot4 exchange``."""

from bot4.server.cli import main

main()
