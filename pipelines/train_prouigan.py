"""DVC stage ``train_prouigan``: ``data/pairs/occlusion`` -> ``artifacts/models/prouigan/`` and its
loss curves."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from models.stages.train_prouigan import build_train_prouigan
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    t0 = time.perf_counter()
    summary = build_train_prouigan(
        Path("data/pairs/occlusion"),
        Path("artifacts/models/prouigan"),
        group(params, "prouigan"),
        int(params.get("seed", 0)),
        live_dir=Path("metrics/train_prouigan_live"),
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process reports
        return 0
    write_metrics(Path("metrics/train_prouigan.json"), summary, t0)
    print(
        f"train_prouigan: {summary['steps']} steps (from step {summary['resumed_at']}) in "
        f"{summary['train_seconds']} s on {summary['device']}; final losses "
        f"{summary['final_losses']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
