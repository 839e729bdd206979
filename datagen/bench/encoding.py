"""Compare the shard image encodings against a plain folder of PNG files, on the same faces.

For each of ``delta-zstd``, ``zstd``, ``png`` and ``raw`` shards, and for one Pillow PNG file per image, this
reports bytes on disk, write time, and read throughput into uint8 torch tensors (random access
and sequential), all in one process on one thread, as the median of ``--repeat`` runs::

    python -m datagen.bench.encoding [--faces data/faces] [--column hr] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from datagen.core import tables
from datagen.core.shards import (
    ENCODINGS,
    DatasetSpec,
    ImageSpec,
    ItemResult,
    ShardDataset,
    default_workers,
    write_dataset,
)

PNG_FOLDER = "PNG folder (Pillow)"


def process(item: dict[str, Any]) -> ItemResult:
    return ItemResult(samples=[item])


def load_images(faces: Path, column: str) -> list[np.ndarray]:
    ds = ShardDataset(faces, images=[column])
    return [ds[i][column].permute(1, 2, 0).numpy() for i in range(len(ds))]


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def write_shards(out: Path, images: list[np.ndarray], column: str, encoding: str) -> None:
    # A fresh folder each time: write_dataset would otherwise skip the shards already complete.
    shutil.rmtree(out, ignore_errors=True)
    spec = DatasetSpec(
        images={column: ImageSpec(images[0].shape)}, columns={"id": pa.string()}, encoding=encoding
    )
    items = [{"id": f"{i:06d}", column: img} for i, img in enumerate(images)]
    write_dataset(
        out,
        spec,
        items,
        process,
        code_module="datagen.bench.encoding",
        item_keys=[it["id"] for it in items],
        params_fingerprint=f"encoding-benchmark-{encoding}",
        items_per_shard=len(items),
        workers=1,
        progress=False,
    )


def write_png_folder(out: Path, images: list[np.ndarray]) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(out / f"{i:06d}.png")


def read_png(p: Path) -> torch.Tensor:
    # Pillow's array is read-only and torch warns about it; these tensors are only read.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))).permute(2, 0, 1)


# A reader is made before the clock starts (files listed, index opened) and timed when called.
Reader = Callable[[], list[torch.Tensor]]


def png_random_reader(root: Path, order: np.ndarray) -> Reader:
    paths = sorted(root.glob("*.png"))
    return lambda: [read_png(paths[i]) for i in order]


def png_sequential_reader(root: Path) -> Reader:
    paths = sorted(root.glob("*.png"))
    return lambda: [read_png(p) for p in paths]


def shard_random_reader(column: str, root: Path, order: np.ndarray) -> Reader:
    # Fresh each time so no row group stays cached from an earlier repeat.
    ds = ShardDataset(root, images=[column])
    return lambda: [ds[int(i)][column] for i in order]


def shard_sequential_reader(column: str, root: Path) -> Reader:
    ds = ShardDataset(root, images=[column])
    return lambda: [s[column] for s in ds.iterable()]


@dataclass
class Result:
    method: str
    bytes: int
    write_s: float
    random_s: float
    sequential_s: float


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    method: str,
    out: Path,
    write: Callable[[Path], None],
    random_reader: Callable[[Path, np.ndarray], Reader],
    sequential_reader: Callable[[Path], Reader],
    images: list[np.ndarray],
    repeat: int,
) -> Result:
    write_s = statistics.median(timed(partial(write, out)) for _ in range(repeat))
    # A fast reader that returns the wrong pixels would win this benchmark; refuse to report it.
    for reader in (random_reader(out, np.arange(len(images))), sequential_reader(out)):
        for t, a in zip(reader(), images, strict=True):
            if not np.array_equal(t.permute(1, 2, 0).numpy(), a):
                raise SystemExit(f"error: {method} does not read back the images it wrote")
    orders = [np.random.default_rng(r).permutation(len(images)) for r in range(repeat)]
    random_s = statistics.median(timed(random_reader(out, o)) for o in orders)
    sequential_s = statistics.median(timed(sequential_reader(out)) for _ in range(repeat))
    return Result(method, dir_bytes(out), write_s, random_s, sequential_s)


def benchmark(images: list[np.ndarray], column: str, workdir: Path, repeat: int) -> list[Result]:
    results = [
        measure(
            PNG_FOLDER,
            workdir / "png-folder",
            partial(write_png_folder, images=images),
            png_random_reader,
            png_sequential_reader,
            images,
            repeat,
        )
    ]
    for enc in ENCODINGS:
        results.append(
            measure(
                f"shards, {enc}",
                workdir / f"shards-{enc}",
                partial(write_shards, images=images, column=column, encoding=enc),
                partial(shard_random_reader, column),
                partial(shard_sequential_reader, column),
                images,
                repeat,
            )
        )
    return results


def results_table(results: list[Result], n_images: int, markdown: bool) -> str:
    base = results[0]
    header = [
        "method",
        "bytes/image",
        "size vs PNG folder",
        "write ms/image",
        "random read img/s",
        "sequential read img/s",
        "random read vs PNG folder",
        "sequential read vs PNG folder",
    ]
    body = [
        [
            r.method,
            f"{r.bytes / n_images:,.0f}",
            f"{r.bytes / base.bytes:.2f}x",
            f"{1000 * r.write_s / n_images:.3f}",
            f"{n_images / r.random_s:,.0f}",
            f"{n_images / r.sequential_s:,.0f}",
            f"{base.random_s / r.random_s:.2f}x",
            f"{base.sequential_s / r.sequential_s:.2f}x",
        ]
        for r in results
    ]
    return tables.format_table(header, body, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.bench.encoding",
        description="Size and read speed of each shard encoding against a folder of PNG files.",
    )
    ap.add_argument(
        "--faces", type=Path, default=Path("data/faces"), help="shard dataset to take images from"
    )
    ap.add_argument("--column", default="hr", help="image column to benchmark (default hr)")
    ap.add_argument(
        "--repeat", type=int, default=5, help="runs per measurement; the median is reported"
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to write (default: a temp dir, removed afterwards)",
    )
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    # Per-core numbers: every decoder (torch, Arrow, OpenCV) gets exactly one thread.
    torch.set_num_threads(1)
    pa.set_cpu_count(1)
    cv2.setNumThreads(1)

    images = load_images(args.faces, args.column)
    if not images:
        print(f"error: {args.faces} has no samples", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="encoding-benchmark-"))
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        results = benchmark(images, args.column, workdir, args.repeat)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"CPUs: {os.cpu_count()} (usable by this process: {default_workers()}); threads used: 1")
    print(
        f"images: {len(images)} x {args.column} {images[0].shape[0]}x{images[0].shape[1]}x"
        f"{images[0].shape[2]} uint8 from {args.faces}; median of {args.repeat} runs"
    )
    print()
    print(results_table(results, len(images), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
