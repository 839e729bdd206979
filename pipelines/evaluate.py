"""DVC stage ``evaluate`` (``matrix`` of method x task): ``metrics/eval/<method>-<task>.json``
and its sample grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.eval.protocol import METHODS, checkpoint_dir
from models.stages.evaluate import build_evaluate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", required=True, choices=METHODS)
    ap.add_argument("--task", required=True, choices=("illumination", "pose", "occlusion"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    name = f"{args.method}-{args.task}"
    checkpoint = None if args.method == "bicubic" else checkpoint_dir(args.method, args.task)
    r = build_evaluate(
        args.method,
        args.task,
        Path("data/pairs") / args.task,
        Path("data/faces"),
        checkpoint,
        Path("metrics/eval") / f"{name}.json",
        Path("metrics/eval") / f"{name}.png",
        args.device,
    )
    print(
        f"evaluate {name}: PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}, identity distance "
        f"{r['identity_distance']:.3f}, rank-1 {r['rank1']:.3f} on {r['n']} test pairs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
