"""DVC stage ``train_baseline`` (``foreach`` task): ``data/pairs/<task>`` ->
``artifacts/models/baseline-<task>/`` and its loss curves."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from models.stages.train_baseline import build_train_baseline
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", required=True, choices=("illumination", "pose", "occlusion"))
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    t0 = time.perf_counter()
    summary = build_train_baseline(
        args.task,
        Path("data/pairs") / args.task,
        Path("artifacts/models") / f"baseline-{args.task}",
        group(params, "baseline"),
        int(params.get("seed", 0)),
        live_dir=Path("metrics") / f"train_baseline-{args.task}_live",
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process reports
        return 0
    write_metrics(Path("metrics") / f"train_baseline-{args.task}.json", summary, t0)
    print(
        f"train_baseline {args.task}: {summary['steps']} steps (from step "
        f"{summary['resumed_at']}) in {summary['train_seconds']} s on {summary['device']}; final losses "
        f"{summary['final_losses']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
