"""``python -m datagen.rain sample``: relight faces from the command line with a trained RaIN.

Every input image gets ``--n`` relit versions. The latents come from ``--seed`` (sample i uses
the same latent for every input, so a grid column is one lighting), or from ``--z`` (explicit
vectors), or from ``--interpolate A B`` (``--n`` steps on the great circle between the first
latents of seeds A and B). Writes ``<stem>_<i>.png`` per sample, ``grid.png`` and
``manifest.json`` (which latent made which file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from datagen import rain
from datagen.core.images import ImageRejected, is_image_path, load_rgb
from models.train.device import pick_device

GRID_CELL = 128  # grid thumbnails, pixels
GRID_ROWS = 16  # inputs shown in the grid at most


class UsageError(Exception):
    """Bad input on the command line: reported as one line, exit status 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.rain",
        description="RaIN (CPGAN's random adaptive instance normalisation): relight faces.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "sample",
        help="relight images with random, explicit or interpolated latents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument(
        "--checkpoint",
        default="artifacts/rain",
        help="RaIN checkpoint: rain.safetensors or its folder (default: artifacts/rain, "
        "written by the rain_train stage)",
    )
    s.add_argument(
        "--input", required=True, help="an image, or a folder searched recursively for images"
    )
    s.add_argument("--n", type=int, default=4, help="relit samples per input (default 4)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random latents (default 0)")
    s.add_argument("--out", default="rain-samples", help="output folder (default rain-samples)")
    s.add_argument(
        "--z",
        action="append",
        metavar="V1,V2,...",
        help="an explicit latent, comma-separated (repeat for several), or a .npy file of "
        "n x latent; replaces --seed and --n",
    )
    s.add_argument(
        "--interpolate",
        nargs=2,
        type=int,
        metavar=("SEED_A", "SEED_B"),
        help="--n latents from seed A's first latent to seed B's (spherical interpolation)",
    )
    s.add_argument(
        "--align",
        action="store_true",
        help="detect the face (dlib), align and crop it to the model's training size first; "
        "without it the whole image is relit at its own size",
    )
    s.add_argument("--batch", type=int, default=16, help="samples per decoder batch (default 16)")
    s.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda[:N]")
    s.add_argument("--no-grid", action="store_true", help="do not write grid.png")
    return ap.parse_args(argv)


def slerp(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` points from ``a`` to ``b`` on the great circle (norms interpolated linearly):
    keeps interpolated Gaussian latents at a typical norm, where a straight line would not."""
    t = torch.linspace(0, 1, n)[:, None]
    na, nb = a.norm(), b.norm()
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua * ub).sum().clamp(-1, 1))
    if omega < 1e-6:
        dirs = ua.expand(n, -1)
    else:
        dirs = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return dirs * ((1 - t) * na + t * nb)


def parse_latents(args: argparse.Namespace, latent: int) -> torch.Tensor:
    if args.z and args.interpolate:
        raise UsageError("--z and --interpolate exclude each other")
    if args.z:
        if len(args.z) == 1 and args.z[0].endswith(".npy"):
            try:
                z = np.load(args.z[0], allow_pickle=False)
            except (OSError, ValueError) as e:
                raise UsageError(f"--z {args.z[0]}: cannot read ({e})") from e
            z = np.atleast_2d(z)
        else:
            try:
                z = np.array([[float(v) for v in s.split(",")] for s in args.z])
            except ValueError as e:
                raise UsageError(f"--z must be comma-separated numbers ({e})") from e
        if z.ndim != 2 or z.shape[1] != latent:
            raise UsageError(f"--z: the checkpoint's latent has {latent} values, got {z.shape}")
        if not np.isfinite(z).all():
            raise UsageError("--z holds a non-finite value")
        return torch.from_numpy(z.astype(np.float32))
    if args.n < 1:
        raise UsageError("--n must be at least 1")
    if args.interpolate:
        a, b = (rain.latents(s, 1, latent)[0] for s in args.interpolate)
        return slerp(a, b, args.n)
    return rain.latents(args.seed, args.n, latent)


def list_inputs(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p))
        if not found:
            raise UsageError(f"--input {path}: no images in this folder")
        return found
    if not path.exists():
        raise UsageError(f"--input {path}: no such file or folder")
    return [path]


class Aligner:
    """dlib detection + 68 landmarks + the faces stage's alignment, at ``size``."""

    def __init__(self, size: int):
        from datagen.face.landmarks import DlibLandmarker, FaceDetector

        self.size = size
        self.detector, self.landmarker = FaceDetector(), DlibLandmarker()

    def __call__(self, rgb: np.ndarray, name: str) -> np.ndarray:
        from datagen.face import align

        found = self.detector.detect(rgb)
        if not found:
            raise UsageError(f"{name}: no face found (--align needs one)")
        lm = self.landmarker(rgb, found[0])
        return align.warp_crop(rgb, align.estimate_alignment(lm, self.size), self.size)


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (GRID_CELL, GRID_CELL), interpolation=cv2.INTER_AREA)


def sample(args: argparse.Namespace) -> int:
    from datagen.core.images import tile_grid, write_png

    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    inputs = list_inputs(Path(args.input))
    try:
        model = rain.load(args.checkpoint, pick_device(args.device))
    except (rain.CheckpointError, RuntimeError) as e:
        raise UsageError(str(e)) from e
    z = parse_latents(args, model.config.latent)
    aligner = Aligner(model.config.size) if args.align else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.input) if Path(args.input).is_dir() else None
    rows, manifest = [], []
    for path in tqdm(inputs, desc="relight", unit="image", disable=len(inputs) < 2):
        try:
            rgb = load_rgb(path, 10**8, 8)
        except ImageRejected as e:
            raise UsageError(f"{path}: cannot use this image ({e.reason}: {e.detail})") from e
        if aligner is not None:
            rgb = aligner(rgb, str(path))
        stem = "_".join(path.relative_to(root).with_suffix("").parts) if root else path.stem
        relit = rain.relight_face(model, rgb, z, args.batch)
        for i, im in enumerate(relit):
            name = f"{stem}_{i:03d}.png"
            write_png(out / name, im)
            manifest.append({"file": name, "input": str(path), "z": z[i].tolist()})
        if len(rows) < GRID_ROWS:
            rows.append([thumbnail(rgb), *(thumbnail(im) for im in relit)])
    if not args.no_grid:
        write_png(out / "grid.png", tile_grid(rows))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(
        f"wrote {len(manifest)} images ({len(inputs)} input(s) x {len(z)} latents) "
        f"to {out}{'' if args.no_grid else ' and grid.png'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "sample":
            return sample(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1
