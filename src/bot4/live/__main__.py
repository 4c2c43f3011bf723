"""``python -m bot4.live paper|live ...``: the same as ``bot4 paper|live``."""

from bot4.live.cli import main

main()
