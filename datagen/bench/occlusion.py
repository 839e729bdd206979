"""Occlusion pairs per second per core: our ``occlude_pair`` against the albumentations pipeline
a user would otherwise write, on the same faces, in one process on one thread.

Both sides do the same work per pair: draw a hole mask, fill the hole with zeros, apply a random
similarity transform, downsample to 16x16, and encode ``lr``, ``hr`` and ``mask`` with the shard
default (``delta-zstd``). Each row is the median of ``--repeat`` runs over every face::

    python -m datagen.bench.occlusion [--faces data/faces] [--repeat 5] [--pairs-per-face 4]
        [--markdown]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pyarrow as pa
import torch

from datagen.core import tables
from datagen.core.pairs import FaceImages, FaceRef, face_refs
from datagen.core.shards import ImageSpec, default_workers, encode_image
from datagen.face.degrade import DegradeParams
from datagen.face.masks import HOLE
from datagen.stages.pairs_occlusion import OcclusionParams, occlude_pair

ENCODING = "delta-zstd"  # the shard default
ALBUMENTATIONS = "albumentations (CoarseDropout + Affine + Resize)"

# One pass over every face: returns the number of pairs it made.
Run = Callable[[], int]


@dataclass
class Result:
    method: str
    pairs: int
    seconds: float


def load_faces(faces: Path) -> tuple[list[FaceRef], list[np.ndarray]]:
    refs, _ = face_refs(faces)
    images = FaceImages(faces)
    return refs, [images(r) for r in refs]


def encode_pair(lr: np.ndarray, hr: np.ndarray, mask: np.ndarray) -> list[bytes]:
    return [
        encode_image(lr, ImageSpec(lr.shape), ENCODING),
        encode_image(hr, ImageSpec(hr.shape), ENCODING),
        encode_image(mask, ImageSpec(mask.shape), ENCODING),
    ]


def ours(
    refs: list[FaceRef],
    hrs: list[np.ndarray],
    k: int,
    p: OcclusionParams,
    d: DegradeParams | None = None,
) -> Run:
    d = d or DegradeParams()

    def run() -> int:
        for ref, hr in zip(refs, hrs, strict=True):
            for j in range(k):
                s = occlude_pair(hr, ref, j, 0, p, d, None)
                encode_pair(s["lr"], s["hr"], s["mask"])
        return len(refs) * k

    return run


def albumentations_pipelines(
    lr_size: int, interpolation: int = cv2.INTER_LINEAR
) -> tuple[A.Compose, A.Compose]:
    """The dropout and the degrade as two Composes: our mask lives in the HR frame, untransformed,
    while the LR is occluded *then* transformed, so the hole mask has to leave after the dropout
    and before the Affine and Resize (one Compose would warp and shrink the mask with the image).
    Seeded so that each repeat draws the same holes and transforms."""
    d = DegradeParams()
    # Height and width are drawn independently: rectangles, square only by chance. The mask target
    # gets ``fill_mask`` in the holes, so albumentations returns the hole mask itself.
    occlude = A.Compose(
        [
            A.CoarseDropout(
                num_holes_range=(1, 1),
                hole_height_range=(16, 64),
                hole_width_range=(16, 64),
                fill=0,
                fill_mask=HOLE,
                p=1,
            )
        ],
        seed=0,
    )
    # keep_ratio: one scale for both axes, a similarity like ours; reflect-101 border like ours.
    degrade = A.Compose(
        [
            A.Affine(
                rotate=(-d.rotation, d.rotation),
                translate_percent=(-d.shift, d.shift),
                scale=d.scale,
                keep_ratio=True,
                border_mode=cv2.BORDER_REFLECT_101,
                p=1,
            ),
            A.Resize(lr_size, lr_size, interpolation=interpolation),
        ],
        seed=0,
    )
    return occlude, degrade


def albumentations_pair(
    hr: np.ndarray, occlude: A.Compose, degrade: A.Compose
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lr, occluded HR, mask): the HR target stays the clean face, as in ours."""
    out = occlude(image=hr, mask=np.zeros(hr.shape[:2], np.uint8))
    lr = degrade(image=out["image"])["image"]
    return lr, out["image"], out["mask"]


def albumentations(hrs: list[np.ndarray], k: int, interpolation: int = cv2.INTER_LINEAR) -> Run:
    def run() -> int:
        occlude, degrade = albumentations_pipelines(
            DegradeParams().lr_size, interpolation
        )  # same seed each run
        for hr in hrs:
            for _ in range(k):
                lr, _, mask = albumentations_pair(hr, occlude, degrade)
                encode_pair(lr, hr, mask)
        return len(hrs) * k

    return run


def check_albumentations(hrs: list[np.ndarray]) -> None:
    # A pipeline that skipped the hole or the mask would look fast; refuse to report it.
    occlude, degrade = albumentations_pipelines(DegradeParams().lr_size)
    for hr in hrs[:16]:
        lr, occluded, mask = albumentations_pair(hr, occlude, degrade)
        hole = mask == HOLE
        rows, cols = np.nonzero(hole.any(1))[0], np.nonzero(hole.any(0))[0]
        if (
            lr.shape != (16, 16, 3)
            or not 16 <= len(rows) <= 64
            or not 16 <= len(cols) <= 64
            or hole.sum() != len(rows) * len(cols)
            or occluded[hole].any()
            or not np.array_equal(occluded[~hole], hr[~hole])
        ):
            raise SystemExit("error: the albumentations pipeline does not make the expected pair")


def timed(run: Run) -> tuple[int, float]:
    start = time.perf_counter()
    pairs = run()
    return pairs, time.perf_counter() - start


def benchmark(refs: list[FaceRef], hrs: list[np.ndarray], k: int, repeat: int) -> list[Result]:
    check_albumentations(hrs)
    moved = OcclusionParams(transform=True)
    runs: list[tuple[str, Run]] = [
        (ALBUMENTATIONS, albumentations(hrs, k)),
        ("ours, transform, default mix (irregular+square)", ours(refs, hrs, k, moved)),
        ("ours, transform, square only", ours(refs, hrs, k, replace(moved, mix={"square": 1.0}))),
        (
            "ours, transform, irregular only",
            ours(refs, hrs, k, replace(moved, mix={"irregular": 1.0})),
        ),
        (
            "ours, transform, irregular only, occlusion.irregular_style=blobs",
            ours(refs, hrs, k, replace(moved, mix={"irregular": 1.0}, irregular_style="blobs")),
        ),
        ("ours, no transform (stage default), default mix", ours(refs, hrs, k, OcclusionParams())),
        # cv2's INTER_LINEAR does not widen its kernel when shrinking 128 -> 16, so it aliases;
        # INTER_AREA is the anti-aliased choice on both sides.
        ("albumentations, Resize INTER_AREA", albumentations(hrs, k, cv2.INTER_AREA)),
        (
            "ours, transform, square only, degrade.interpolation=area",
            ours(
                refs,
                hrs,
                k,
                replace(moved, mix={"square": 1.0}),
                DegradeParams(interpolation="area"),
            ),
        ),
    ]
    for _, run in runs:
        run()  # warm-up: first-call costs (albumentations' validation, lazy imports)
    # Round-robin, not one method after another: a slow spell of a shared machine then hits
    # every method alike instead of skewing the ratios.
    times: list[list[float]] = [[] for _ in runs]
    pairs = [0] * len(runs)
    for _ in range(repeat):
        for i, (_, run) in enumerate(runs):
            pairs[i], t = timed(run)
            times[i].append(t)
    return [
        Result(name, n, statistics.median(t))
        for (name, _), n, t in zip(runs, pairs, times, strict=True)
    ]


def results_table(results: list[Result], markdown: bool) -> str:
    base = results[0]  # albumentations
    header = ["method", "pairs/s per core", "ms per pair", "vs albumentations"]
    body = [
        [
            r.method,
            f"{r.pairs / r.seconds:,.0f}",
            f"{1000 * r.seconds / r.pairs:.3f}",
            f"{(r.pairs / r.seconds) / (base.pairs / base.seconds):.2f}x",
        ]
        for r in results
    ]
    return tables.format_table(header, body, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.bench.occlusion",
        description="Occlusion pairs per second per core: ours against albumentations.",
    )
    ap.add_argument(
        "--faces", type=Path, default=Path("data/faces"), help="aligned faces dataset (hr column)"
    )
    ap.add_argument(
        "--repeat", type=int, default=5, help="runs per measurement; the median is reported"
    )
    ap.add_argument("--pairs-per-face", type=int, default=4, help="pairs per face (occlusion.k)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.pairs_per_face < 1:
        ap.error("--repeat and --pairs-per-face must be >= 1")

    # Per-core numbers: every library that could spread work (OpenCV, torch, Arrow) gets one thread.
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    refs, hrs = load_faces(args.faces)  # loaded once: decoding is not what is measured
    results = benchmark(refs, hrs, args.pairs_per_face, args.repeat)

    print(f"CPUs: {os.cpu_count()} (usable by this process: {default_workers()}); threads used: 1")
    h, w, c = hrs[0].shape
    print(
        f"faces: {len(hrs)} x hr {h}x{w}x{c} uint8 from {args.faces}; {args.pairs_per_face} pairs "
        f"per face; lr/hr/mask encoded {ENCODING}; median of {args.repeat} runs"
    )
    print()
    print(results_table(results, args.markdown))
    print()
    print(
        "Note: albumentations' CoarseDropout holes (one rectangle, sides 16-64 px) compare with our "
        "square masks only; our irregular PConv strokes have no albumentations equivalent."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
