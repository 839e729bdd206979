"""DVC stage ``rain_train``: ``data/faces`` (+ ``data/fits`` for the built-in style pool) ->
``artifacts/rain/`` (RaIN checkpoint, sample grid) and the dvclive loss curves."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datagen import rain
from datagen.core.params import group, load_params
from datagen.stages.rain_train import build_rain_train
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--fits", default="data/fits")
    ap.add_argument("--out", default="artifacts/rain")
    ap.add_argument("--metrics", default="metrics/rain_train.json")
    ap.add_argument("--live", default="metrics/rain_train_live", help="dvclive folder")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    t0 = time.perf_counter()
    summary = build_rain_train(
        Path(args.faces),
        Path(args.fits),
        Path(args.out),
        group(params, "rain"),
        group(params, "relight"),
        int(params.get("seed", 0)),
        live_dir=Path(args.live),
    )
    write_metrics(args.metrics, summary, t0)
    print(
        f"rain_train: {summary['steps']} steps in {summary['train_seconds']} s "
        f"({summary['steps_per_second']} steps/s on {summary['device']}); final losses "
        f"{summary['final_losses']}; checkpoint {Path(args.out) / rain.CHECKPOINT}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
