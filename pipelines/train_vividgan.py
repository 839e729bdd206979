"""DVC stage ``train_vividgan``: ``data/pairs/pose`` -> ``artifacts/models/vividgan/`` and its
loss curves."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from datagen.core.params import group, load_params
from models.stages.train_vividgan import build_train_vividgan
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    t0 = time.perf_counter()
    summary = build_train_vividgan(
        Path("data/pairs/pose"),
        Path("artifacts/models/vividgan"),
        group(params, "vividgan"),
        int(params.get("seed", 0)),
        live_dir=Path("metrics/train_vividgan_live"),
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process reports
        return 0
    write_metrics(Path("metrics/train_vividgan.json"), summary, t0)
    print(
        f"train_vividgan: {summary['steps']} steps (from step {summary['resumed_at']}) in "
        f"{summary['train_seconds']} s on {summary['device']}; final losses "
        f"{summary['final_losses']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
