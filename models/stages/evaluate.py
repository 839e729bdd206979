"""Stage ``evaluate`` (one per method x task): a method's outputs on the test split of
``data/pairs/<task>`` scored by the evaluation protocol -> ``metrics/eval/<method>-<task>.json``
and ``metrics/eval/<method>-<task>.png`` (LR | bicubic | method | target)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.eval.protocol import evaluate, write_record


def build_evaluate(
    method: str,
    task: str,
    pairs_dir: Path,
    faces_dir: Path,
    checkpoint: Path | None,
    out_json: Path,
    grid: Path | None,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate ``method`` (a trained network at ``checkpoint``, or bicubic) on ``task``."""
    record = evaluate(method, task, pairs_dir, faces_dir, checkpoint, grid, device)
    write_record(record, out_json)
    return record
