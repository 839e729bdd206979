"""What every stage entry point does last: record its summary where DVC reads metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def write_metrics(path: str | Path, summary: dict[str, Any], started: float) -> dict[str, Any]:
    """Add the wall time since ``started`` (perf_counter) and write ``summary`` as JSON."""
    summary["seconds"] = round(time.perf_counter() - started, 2)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
