"""Where the pose stage's time goes, and whether supersampling the render matters.

On N faces of ``data/faces`` (one process): SFM fit, eos texture extraction, the 8 default yaws
rendered in one batch vs one call per yaw; then the 128 px non-frontal image as the stage makes
it (render at the 256 px large crop, area-reduced: 2x supersampling) and without supersampling
(rendered straight at 128 from the 128 px face), each against a 4x-supersampled reference, PSNR
inside the face.

``python -m datagen.bench.pose --faces data/faces --n 20 --markdown``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from datagen.core.shards import ShardDataset
from datagen.core.tables import format_table
from datagen.face.degrade import scale_points
from datagen.face3d import morphable, turning
from datagen.stages.pairs_pose import DEFAULT_YAWS


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    mse = ((a[where].astype(float) - b[where].astype(float)) ** 2).mean()
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def write_grid(faces: str, rows: list[int], out: Path) -> None:
    """Each face (frontal, then turned to each default yaw) as the stage's 128 px images."""
    from PIL import Image

    ds = ShardDataset(faces, images=["hr", "hr_large"])
    lines = []
    for i in rows:
        row = ds[i]
        large = row["hr_large"].permute(1, 2, 0).numpy()
        size = row["hr"].shape[-1]
        src = turning.prepare(large, np.asarray(row["landmarks_large"], np.float64))
        views = [row["hr"].permute(1, 2, 0).numpy()]
        for r in turning.render_yaws(src, list(DEFAULT_YAWS)):
            views.append(cv2.resize(r.image, (size, size), interpolation=cv2.INTER_AREA))
        lines.append(np.hstack(views))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.vstack(lines)).save(out, quality=90)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.bench.pose", description=__doc__)
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--grid", help="also write a picture: faces (rows) at every default yaw")
    ap.add_argument("--grid-faces", default="3,50,120", help="faces-index rows for --grid")
    args = ap.parse_args(argv)
    if args.grid:
        rows = [int(i) for i in args.grid_faces.split(",")]
        write_grid(args.faces, rows, Path(args.grid))
        print(f"wrote {args.grid}")

    ds = ShardDataset(args.faces, images=["hr", "hr_large"])
    yaws = list(DEFAULT_YAWS)
    t = {"fit": [], "texture": [], "batched": [], "one by one": []}
    quality = {"2x (stage)": [], "1x": []}
    idx = np.linspace(0, len(ds) - 1, min(args.n, len(ds))).round().astype(int)
    for i in idx:
        row = ds[int(i)]
        large = row["hr_large"].permute(1, 2, 0).numpy()
        hr = row["hr"].permute(1, 2, 0).numpy()
        lm = np.asarray(row["landmarks_large"], np.float64)
        t0 = time.perf_counter()
        f = morphable.fit(lm, large.shape[1::-1])
        t1 = time.perf_counter()
        src = turning.from_fit(large, f)
        t2 = time.perf_counter()
        batch = turning.render_yaws(src, yaws)
        t3 = time.perf_counter()
        for y in yaws:
            turning.render_yaw(src, y)
        t4 = time.perf_counter()
        t["fit"].append(t1 - t0)
        t["texture"].append(t2 - t1)
        t["batched"].append(t3 - t2)
        t["one by one"].append(t4 - t3)

        size = hr.shape[0]
        small = turning.prepare(hr, scale_points(lm, large.shape[0], size))
        for r in batch:
            ref = turning.render_yaw(src, r.yaw, supersample=2)
            ref128 = cv2.resize(ref.image, (size, size), interpolation=cv2.INTER_AREA)
            face = cv2.resize(ref.face.astype(np.uint8), (size, size), cv2.INTER_AREA) > 0
            stage = cv2.resize(r.image, (size, size), interpolation=cv2.INTER_AREA)
            direct = turning.render_yaw(small, r.yaw).image
            quality["2x (stage)"].append(psnr(stage, ref128, face))
            quality["1x"].append(psnr(direct, ref128, face))

    n = len(idx)
    rows = [
        [
            k,
            f"{1000 * np.mean(v):.0f}",
            f"{1000 * np.mean(v) / (len(yaws) if 'by' in k or k == 'batched' else 1):.0f}",
        ]
        for k, v in t.items()
    ]
    print(f"{n} faces, {len(yaws)} yaws, one process")
    print(format_table(["step (per face)", "ms", "ms per image"], rows, args.markdown))
    speed = np.mean(t["one by one"]) / np.mean(t["batched"])
    per_face = np.mean(t["fit"]) + np.mean(t["texture"]) + np.mean(t["batched"])
    print(
        f"\nbatched rendering: {speed:.2f}x the speed of one call per yaw; fit + texture + "
        f"{len(yaws)} renders: {1 / per_face:.2f} faces/s per core"
    )
    print()
    print(
        format_table(
            ["128 px render", "PSNR vs 4x reference, dB (face)"],
            [[k, f"{np.mean(v):.1f}"] for k, v in quality.items()],
            args.markdown,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
