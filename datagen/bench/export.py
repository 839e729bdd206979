"""Export throughput beside what it costs to only read the same pairs, one process, one thread::

    python -m datagen.bench.export [--pairs data/pairs/occlusion] [--repeat 3] [--markdown]

Rows, all on the same pairs and image columns, median of ``--repeat`` runs:

- decoding them from the shards (``ShardDataset.iterable``, what training reads);
- decoding plus OpenCV PNG encoding at the export's level, nothing written (the export's own
  ``chunk_pngs``): the floor of any PNG export;
- ``datagen.export`` as ``folders`` and as ``hf`` (level 1, the default, and OpenCV's 3);
- the conversion script a user would write otherwise: ``ShardDataset`` plus Pillow's PNG save.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datagen.core import tables
from datagen.core.shards import ShardDataset
from datagen.export.encode import PNG_LEVEL, chunk_pngs
from datagen.export.run import export
from datagen.export.selection import id_column_of, select


def decode_all(root: Path) -> list[dict[str, np.ndarray]]:
    ds = ShardDataset(root)
    return [{k: s[k].permute(1, 2, 0).numpy() for k in ds.images} for s in ds.iterable()]


def encode_all(root: Path, level: int) -> int:
    sel = select(root)
    return sum(
        len(b)
        for c in sel.chunks
        for row in chunk_pngs(root, c, sel.images, level)
        for b in row.values()
    )


def pillow_script(root: Path, out: Path) -> None:
    ds = ShardDataset(root)
    id_col = id_column_of(ds.index.columns)
    for s in ds.iterable():
        for k in ds.images:
            folder = out / s["split"] / k
            folder.mkdir(parents=True, exist_ok=True)
            a = s[k].permute(1, 2, 0).numpy()
            Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).save(folder / f"{s[id_col]}.png")


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.suffix == ".png")


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh(out: Path, fn: Callable[[Path], object]) -> Callable[[], object]:
    def go() -> object:
        shutil.rmtree(out, ignore_errors=True)
        return fn(out)

    return go


def benchmark(root: Path, workdir: Path, repeat: int) -> list[tuple[str, float, float | None]]:
    """(method, seconds, PNG bytes per pair or None) for each row of the table."""
    n = len(ShardDataset(root))
    rows: list[tuple[str, float, float | None]] = [
        (
            "decode from shards (ShardDataset.iterable)",
            timed(lambda: decode_all(root), repeat),
            None,
        )
    ]
    for level in (PNG_LEVEL, 3):
        nbytes = encode_all(root, level)
        rows.append(
            (
                f"decode + PNG encode, level {level} (nothing written)",
                timed(lambda lv=level: encode_all(root, lv), repeat),
                nbytes / n,
            )
        )
    for fmt in ("folders", "hf"):
        for level in (PNG_LEVEL, 3):
            out = workdir / f"{fmt}-{level}"
            run = fresh(
                out,
                lambda o, f=fmt, lv=level: export(root, o, f, png_level=lv, progress=False),
            )
            seconds = timed(run, repeat)
            size = dir_bytes(out) if fmt == "folders" else None
            rows.append(
                (f"datagen.export --format {fmt}, level {level}", seconds, size and size / n)
            )
    out = workdir / "pillow"
    rows.append(
        (
            "user script: ShardDataset + Pillow PNG save",
            timed(fresh(out, lambda o: pillow_script(root, o)), repeat),
            dir_bytes(out) / n,
        )
    )
    return rows


def check_exact(root: Path, workdir: Path) -> None:
    """A fast export that writes the wrong pixels would win; refuse to report it."""
    out = workdir / f"folders-{PNG_LEVEL}"
    ds = ShardDataset(root)
    id_col = id_column_of(ds.index.columns)
    for s in ds.iterable():
        for k in ds.images:
            a = cv2.imread(str(out / s["split"] / k / f"{s[id_col]}.png"), cv2.IMREAD_UNCHANGED)
            want = s[k].permute(1, 2, 0).numpy()
            got = a[..., ::-1] if a.ndim == 3 else a[..., None]
            if not np.array_equal(got, want):
                raise SystemExit(f"error: the export of {s[id_col]}/{k} differs from the shard")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.bench.export", description=__doc__)
    ap.add_argument("--pairs", type=Path, default=Path("data/pairs/occlusion"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)
    n = len(ShardDataset(args.pairs))
    with tempfile.TemporaryDirectory() as tmp:
        rows = benchmark(args.pairs, Path(tmp), args.repeat)
        check_exact(args.pairs, Path(tmp))
    base, floor = rows[0][1], rows[1][1]
    header = ["method", "pairs/s", "time vs decoding", "time vs PNG encoding", "PNG bytes/pair"]
    body = [
        [m, f"{n / s:,.0f}", f"{s / base:.2f}x", f"{s / floor:.2f}x", f"{b:,.0f}" if b else "-"]
        for m, s, b in rows
    ]
    cols = ", ".join(ShardDataset(args.pairs).images)
    print(f"{n} pairs of {args.pairs} ({cols}), median of {args.repeat}, one thread")
    print(tables.format_table(header, body, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
