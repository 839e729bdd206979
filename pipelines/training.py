"""What the network training stages' entry points share: run a stage's build function on its
pair set, then record its summary where DVC reads metrics (the first process only, under
torchrun)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.metrics import write_metrics


def train_stage(
    name: str,
    pairs_dir: Path,
    out_dir: Path,
    build: Callable[..., dict[str, Any]],
    params: dict[str, Any],
    seed: int,
) -> int:
    """``build(pairs_dir, out_dir, params, seed, live_dir=...)`` for stage ``name`` (e.g.
    ``train_cpgan``, ``train_baseline-pose``): loss curves in ``metrics/<name>_live``, the
    summary in ``metrics/<name>.json``. Returns the exit status."""
    t0 = time.perf_counter()
    summary = build(pairs_dir, out_dir, params, seed, live_dir=Path("metrics") / f"{name}_live")
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process reports
        return 0
    write_metrics(Path("metrics") / f"{name}.json", summary, t0)
    print(
        f"{name}: {summary['steps']} steps (from step {summary['resumed_at']}) in "
        f"{summary['train_seconds']} s on {summary['device']}; final losses "
        f"{summary['final_losses']}"
    )
    return 0
