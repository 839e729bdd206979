"""Where the pose stage's time goes, the two renderers side by side, and whether supersampling
the render matters.

On N faces of ``data/faces`` (one process): the SFM fit, then per renderer (``pose.method``:
``head``, the whole picture as one mesh; ``face``, the earlier textured face mesh over a ray
warp) the per-face preparation and the 8 default yaws rendered in one batch, the two alternating
per face; the share of torn or folded pixels of each renderer per yaw
(``datagen.face3d.continuity``). With ``--supersampling``: the 128 px non-frontal image as the
stage makes it (render at the 256 px large crop, area-reduced: 2x supersampling) and without
supersampling (rendered straight at 128 from the 128 px face), each against a 4x-supersampled
reference, PSNR inside the face.

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
from datagen.face3d import continuity, morphable, turning
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


def time_method(
    image: np.ndarray, fit: morphable.Fit, yaws: list[float], method: str
) -> tuple[float, float, list]:
    """Seconds to prepare one face (``turning.from_fit``, plus the texture map for ``face``)
    and to render every yaw in one batch, and the renders."""
    t0 = time.perf_counter()
    src = turning.from_fit(image, fit)
    if method == "face":
        src.texture  # noqa: B018 - the earlier renderer's texture step, made here to time it
    t1 = time.perf_counter()
    renders = turning.render_yaws(src, yaws, method=method)
    return t1 - t0, time.perf_counter() - t1, renders


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.bench.pose", description=__doc__)
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--grid", help="also write a picture: faces (rows) at every default yaw")
    ap.add_argument("--grid-faces", default="3,50,120", help="faces-index rows for --grid")
    ap.add_argument(
        "--supersampling", action="store_true", help="also compare 2x and 1x rendering (slow)"
    )
    args = ap.parse_args(argv)
    if args.grid:
        rows = [int(i) for i in args.grid_faces.split(",")]
        write_grid(args.faces, rows, Path(args.grid))
        print(f"wrote {args.grid}")

    ds = ShardDataset(args.faces, images=["hr", "hr_large"])
    yaws = list(DEFAULT_YAWS)
    methods = turning.METHODS
    t: dict[str, list[float]] = {"fit": []}
    for m in methods:
        t[f"{m}: prepare"], t[f"{m}: render"] = [], []
    tears = {m: {y: [] for y in yaws} for m in methods}
    quality = {"2x (stage)": [], "1x": []}
    idx = np.linspace(0, len(ds) - 1, min(args.n, len(ds))).round().astype(int)
    for j, i in enumerate(idx):
        row = ds[int(i)]
        large = row["hr_large"].permute(1, 2, 0).numpy()
        hr = row["hr"].permute(1, 2, 0).numpy()
        lm = np.asarray(row["landmarks_large"], np.float64)
        t0 = time.perf_counter()
        f = morphable.fit(lm, large.shape[1::-1])
        t["fit"].append(time.perf_counter() - t0)
        # alternate which method goes first, so that neither always runs on a warmer cache
        for m in methods if j % 2 == 0 else methods[::-1]:
            prep, rend, renders = time_method(large, f, yaws, m)
            t[f"{m}: prepare"].append(prep)
            t[f"{m}: render"].append(rend)
            for r in renders:
                tears[m][r.yaw].append(continuity.tear_fraction(r.source_map, r.depth))
        if args.supersampling:
            src = turning.from_fit(large, f)
            size = hr.shape[0]
            small = turning.prepare(hr, scale_points(lm, large.shape[0], size))
            for y in yaws:
                r = turning.render_yaw(src, y)
                ref = turning.render_yaw(src, y, supersample=2)
                ref128 = cv2.resize(ref.image, (size, size), interpolation=cv2.INTER_AREA)
                face = cv2.resize(ref.face.astype(np.uint8), (size, size), cv2.INTER_AREA) > 0
                stage = cv2.resize(r.image, (size, size), interpolation=cv2.INTER_AREA)
                direct = turning.render_yaw(small, y).image
                quality["2x (stage)"].append(psnr(stage, ref128, face))
                quality["1x"].append(psnr(direct, ref128, face))

    n = len(idx)
    print(f"{n} faces, {len(yaws)} yaws, one process, the two renderers alternating per face")
    rows = [[k, f"{1000 * np.mean(v):.0f}"] for k, v in t.items()]
    total = {m: np.mean(t["fit"]) + np.mean(t[f"{m}: prepare"]) + np.mean(t[f"{m}: render"])
             for m in methods}  # fmt: skip
    for m in methods:
        rows.append([f"{m}: fit + prepare + {len(yaws)} yaws", f"{1000 * total[m]:.0f}"])
    print(format_table(["step (per face)", "ms"], rows, args.markdown))
    print(
        f"\nfaces/s per core: head {1 / total['head']:.2f}, face {1 / total['face']:.2f} "
        f"(head at {total['face'] / total['head']:.2f}x the speed of face)"
    )
    print()
    print(
        format_table(
            [
                "yaw",
                *[f"{m}: torn or folded, mean" for m in methods],
                *[f"{m}: worst" for m in methods],
            ],
            [
                [f"{y:+g}"]
                + [f"{100 * np.mean(tears[m][y]):.3f}%" for m in methods]
                + [f"{100 * np.max(tears[m][y]):.3f}%" for m in methods]
                for y in yaws
            ],
            args.markdown,
        )
    )
    if args.supersampling:
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
