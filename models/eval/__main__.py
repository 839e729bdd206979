"""``python -m models.eval evaluate --checkpoint PATH --task TASK [--pairs DIR] [--faces DIR]``:
evaluate any trained network (a user's own included) exactly as the ``evaluate`` stage does.

``python -m models.eval yale --folder PATH [--method M] [--checkpoint PATH] [--subjects N]
--out FILE.json [--markdown]``: the same metrics on real side-lit photos (Extended Yale B
cropped), against each subject's frontally lit face; prints a table per light-azimuth bin.

``python -m models.eval london --folder PATH [--method M] [--checkpoint PATH] [--people A,B]
--out FILE.json [--markdown]``: real turned faces (the London set's 3/4 views of the test
people), against each person's frontal photo; prints a table per side, expression and yaw.

``python -m models.eval edit --checkpoint PATH (--pairs DIR --index N | --lr FILE.png)
--scale GROUP:SX,SY | --shift GROUP:DX,DY --out FILE.png``: Pro-UIGAN with a user-moved
landmark set (prior editing): before | after, and how much changed inside the edited region."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.eval.protocol import METHODS, evaluate, write_record
from models.train.checkpoints import CheckpointError
from models.train.model_loader import load_model


def real_photo_args(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    task: str,
    folder: str,
    grid: str,
    faces: str,
) -> argparse.ArgumentParser:
    """The arguments every real-photo evaluation (yale, london) takes."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--folder", required=True, help=folder)
    p.add_argument("--method", choices=METHODS, help="default: the checkpoint's network")
    p.add_argument("--checkpoint", help=f"{task} model.safetensors or its folder")
    p.add_argument("--out", required=True, help="the JSON record")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--grid", help=f"sample grid PNG: {grid}")
    p.add_argument("--faces", default="data/faces", help=faces)
    p.add_argument("--params", default="params.yaml", help="the project's params")
    p.add_argument("--work", default=f"data/cache/{name}", help="keeps the ingested faces")
    p.add_argument("--workers", type=int, default=0, help="ingest processes (0: every core)")
    p.add_argument("--device", default="auto")
    return p  # fmt: skip


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
    y = real_photo_args(
        sub, "yale", "score bicubic or an illumination checkpoint on Yale B photos",
        "an illumination", "Extended Yale B cropped: <subject>/<images>",
        "LR | bicubic | method | target", "faces dataset (a guided net's guide)",
    )  # fmt: skip
    y.add_argument("--subjects", type=int, help="only the first N subjects (default: all)")
    y.add_argument(
        "--margin", type=float,
        help="grey margin added around each photo before the ingest (fraction of its longer "
        "side; default 0.25, 0: none); the cropped faces fill their frames, which defeats "
        "dlib's detector",
    )  # fmt: skip
    lo = real_photo_args(
        sub, "london", "score bicubic or a pose checkpoint on real 3/4 views", "a pose",
        "the London set (any layout of NNN_VV.jpg)",
        "LR | bicubic | method | target | real view", "faces dataset (its test split: people)",
    )  # fmt: skip
    lo.add_argument(
        "--people", help="comma-separated person numbers (default: --faces' test split)"
    )
    lo.add_argument("--pairs", default="data/pairs/pose", help="pose pairs (the crop templates)")
    ed = sub.add_parser("edit", help="Pro-UIGAN on a face with moved landmarks (prior editing)")
    ed.add_argument("--checkpoint", required=True, help="a Pro-UIGAN model.safetensors or folder")
    ed.add_argument("--pairs", default="data/pairs/occlusion", help="pair set of --index")
    ed.add_argument("--index", type=int, default=0, help="test pair number in --pairs")
    ed.add_argument("--lr", help="an LR face PNG instead of a test pair")
    ed.add_argument("--scale", action="append", default=[], help="GROUP:SX,SY, e.g. mouth:1.3,1")
    ed.add_argument("--shift", action="append", default=[], help="GROUP:DX,DY in 128 px pixels")
    ed.add_argument("--sigma", type=float, default=1.0, help="heatmap sigma, LR pixels")
    ed.add_argument("--out", required=True, help="PNG: LR | before | after | change x 4")
    args = ap.parse_args(argv)
    if args.command == "edit":
        return edit(args)
    if args.command == "yale":
        return yale(args)
    if args.command == "london":
        return london(args)
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


def yale(args: argparse.Namespace) -> int:
    from models.eval.yale import DEFAULT_MARGIN, evaluate_yale, markdown_table

    margin = DEFAULT_MARGIN if args.margin is None else args.margin
    return real_photo_run(
        args, evaluate_yale, markdown_table, subjects=args.subjects, margin=margin
    )


def london(args: argparse.Namespace) -> int:
    from models.eval.london import evaluate_london, markdown_table

    people = None if args.people is None else [p.strip() for p in args.people.split(",") if p]
    return real_photo_run(
        args, evaluate_london, markdown_table, people=people, pairs_dir=args.pairs
    )


def real_photo_run(args: argparse.Namespace, evaluate_fn, table_fn, **extra) -> int:
    """Run a real-photo evaluation with the shared arguments (``real_photo_args``) and
    ``extra``; write its record and print its table, or print the error and return 2."""
    from datagen.core.params import load_params

    try:
        record = evaluate_fn(
            args.folder, args.method, args.checkpoint, params=load_params(args.params),
            faces_dir=args.faces, work_dir=args.work, workers=args.workers, device=args.device,
            grid=args.grid, **extra,
        )  # fmt: skip
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_record(record, args.out)
    print(table_fn(record, markdown=args.markdown))
    return 0


def edit(args: argparse.Namespace) -> int:
    import numpy as np

    from datagen.core.images import load_rgb
    from models.eval import metrics
    from models.eval.prior_edit import GROUPS, edit_face, parse_moves, write_edit

    try:
        moves = parse_moves(args.scale, args.shift)
        model, meta = load_model(args.checkpoint, network="prouigan")
        if args.lr is not None:
            lr = metrics.to_unit(np.array(load_rgb(Path(args.lr), 10**6, 1))[None])[0]
            source = args.lr
        else:
            from models.data.tasks import TaskDataset

            ds = TaskDataset(Path(args.pairs), "occlusion", "test", None)
            if not 0 <= args.index < len(ds):
                raise ValueError(f"--index must be in [0, {len(ds)}), not {args.index}")
            lr = ds[args.index]["lr"]
            source = ds.index["pair_id"][args.index]
        if lr.shape[-1] != model.net.lr_size or lr.shape[-2] != model.net.lr_size:
            raise ValueError(f"the LR face is {tuple(lr.shape[-2:])}; the model takes "
                             f"{model.net.lr_size} x {model.net.lr_size}")  # fmt: skip
        r = edit_face(model, lr, moves, args.sigma)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_edit(args.out, lr, r)
    moved = sorted({g for _, g, _, _ in moves})
    shift = np.abs(r["landmarks_after"] - r["landmarks_before"]).max()
    print(json.dumps({
        "source": source, "edits": [list(m) for m in moves], "groups": moved,
        "points": sum(len(GROUPS[g]) for g in moved), "max_point_shift_px": round(float(shift), 2),
        "box": list(r["box"]), "change_inside": round(r["change_inside"], 4),
        "change_outside": round(r["change_outside"], 4), "out": args.out,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
