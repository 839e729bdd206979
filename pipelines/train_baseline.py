"""DVC stage ``train_baseline`` (``foreach`` task): ``data/pairs/<task>`` ->
``artifacts/models/baseline-<task>/`` and its loss curves."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from datagen.core.params import group, load_params
from models.stages.train_baseline import build_train_baseline
from pipelines.training import train_stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", required=True, choices=("illumination", "pose", "occlusion"))
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    return train_stage(
        f"train_baseline-{args.task}",
        Path("data/pairs") / args.task,
        Path("artifacts/models") / f"baseline-{args.task}",
        functools.partial(build_train_baseline, args.task),
        group(params, "baseline"),
        int(params.get("seed", 0)),
    )


if __name__ == "__main__":
    sys.exit(main())
