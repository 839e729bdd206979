"""``python -m models.eval evaluate --checkpoint PATH --task TASK [--pairs DIR] [--faces DIR]``:
evaluate any trained network (a user's own included) exactly as the ``evaluate`` stage does."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.eval.protocol import METHODS, evaluate, write_record
from models.train.checkpoints import CheckpointError
from models.train.model_file import load_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.eval", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="score a checkpoint (or bicubic) on a task's test split")
    e.add_argument("--checkpoint", help="a model.safetensors or its folder (omit for bicubic)")
    e.add_argument("--method", choices=METHODS, help="default: the checkpoint's network")
    e.add_argument("--task", required=True, choices=("illumination", "pose", "occlusion"))
    e.add_argument("--pairs", help="pair set (default data/pairs/<task>)")
    e.add_argument("--faces", default="data/faces", help="faces dataset (the gallery)")
    e.add_argument("--out", help="JSON record (default: printed)")
    e.add_argument("--grid", help="sample grid PNG")
    e.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if args.checkpoint is not None and args.method == "bicubic":
        print("error: bicubic takes no --checkpoint", file=sys.stderr)
        return 2
    try:
        method = args.method
        if method is None:
            if args.checkpoint is None:
                method = "bicubic"
            else:
                _, meta = load_model(args.checkpoint)
                method = meta["network"]
        pairs = Path(args.pairs or f"data/pairs/{args.task}")
        record = evaluate(
            method, args.task, pairs, Path(args.faces), args.checkpoint, args.grid, args.device
        )
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        write_record(record, args.out)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
