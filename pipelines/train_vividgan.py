"""DVC stage ``train_vividgan``: ``data/pairs/pose`` -> ``artifacts/models/vividgan/`` and its
loss curves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datagen.core.params import group, load_params
from models.stages.train_vividgan import build_train_vividgan
from pipelines.training import train_stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    return train_stage(
        "train_vividgan",
        Path("data/pairs/pose"),
        Path("artifacts/models/vividgan"),
        build_train_vividgan,
        group(params, "vividgan"),
        int(params.get("seed", 0)),
    )


if __name__ == "__main__":
    sys.exit(main())
