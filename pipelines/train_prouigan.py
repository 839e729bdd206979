"""DVC stage ``train_prouigan``: ``data/pairs/occlusion`` -> ``artifacts/models/prouigan/`` and its
loss curves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datagen.core.params import group, load_params
from models.stages.train_prouigan import build_train_prouigan
from pipelines.training import train_stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    return train_stage(
        "train_prouigan",
        Path("data/pairs/occlusion"),
        Path("artifacts/models/prouigan"),
        build_train_prouigan,
        group(params, "prouigan"),
        int(params.get("seed", 0)),
    )


if __name__ == "__main__":
    sys.exit(main())
