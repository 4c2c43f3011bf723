"""What every benchmark script ends with: its figures, the machine, one JSON line."""

from __future__ import annotations

import json
import os
import platform


def report(figures: dict[str, object], quick: bool, elapsed_sec: float) -> None:
    """Print the last line: ``figures`` plus the run's context, as one JSON object."""
    print(
        json.dumps(
            {
                **figures,
                "quick": quick,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "elapsed_sec": round(elapsed_sec, 2),
            }
        )
    )
