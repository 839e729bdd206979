"""What every evaluation on real photos shares: the ``faces`` stage run on a user's folder of
photos (``ingest``), the part of each aligned crop that is photo (``photo_box``), and the method
to score (``load_method``: bicubic, or a checkpoint trained for the task). Used by the Yale B
(illumination) and London 3/4-view (pose) evaluations."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from datagen.core.images import load_rgb, tile_grid, write_png
from datagen.core.params import group
from datagen.core.shards import ShardDataset
from datagen.stages.faces import build_faces
from models.eval import metrics
from models.eval.protocol import METHODS, bicubic
from models.train.model_loader import load_model


def staged_name(path: Path) -> str:
    """The name a photo goes into the ingest under (and its faces' ``source``): a PNG, since a
    margin is written as one."""
    return f"{path.stem}.png"


def add_margin(src: Path, dst: Path, margin: float) -> tuple[int, int, int]:
    """Write ``src`` as a 3-channel PNG at ``dst`` with a mid-grey border of ``margin`` x its
    longer side on each edge. The cropped Yale B faces touch the frame, and dlib's HOG detector
    needs context around a face: on two subjects it finds 24 of 128 faces as they are, 63 with
    a 0.25 grey margin (59 black, 57 mirrored, 33 with a 0.5 one). Returns the margin in
    pixels and the photo's width and height."""
    rgb = load_rgb(src, 10**9, 1)  # grey -> RGB (replicated), as the ingest itself does
    m = int(round(margin * max(rgb.shape[:2])))
    write_png(dst, cv2.copyMakeBorder(rgb, m, m, m, m, cv2.BORDER_CONSTANT, value=(128,) * 3))
    return m, rgb.shape[1], rgb.shape[0]


def photo_box(
    matrix: np.ndarray, margin: int, width: int, height: int, size: int
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: the largest upright box of an aligned ``size`` crop
    (``matrix``: source -> crop pixels) whose pixels all come from the photo, not from the
    margin or the ingest's border fill. The similarity barely rotates, so the box is bounded by
    the innermost of each edge's two mapped corners (pixel centres)."""
    lo, hi = (margin, margin), (margin + width - 1, margin + height - 1)
    c = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]]], np.float64)
    x, y = (c @ np.asarray(matrix, np.float64)[:, :2].T + np.asarray(matrix)[:, 2]).T
    # corners in order top-left, top-right, bottom-left, bottom-right (image axes kept upright)
    x0, x1 = np.ceil(max(x[0], x[2])), np.floor(min(x[1], x[3])) + 1
    y0, y1 = np.ceil(max(y[0], y[1])), np.floor(min(y[2], y[3])) + 1
    box = (max(0, int(x0)), max(0, int(y0)), min(size, int(x1)), min(size, int(y1)))
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        raise ValueError(f"the photo covers under 8 x 8 pixels of the aligned crop: {box}")
    return box


def ingest(
    files: dict[str, list[Path]],
    work_dir: Path,
    params: dict[str, Any],
    margin: float = 0.0,
    workers: int = 0,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``faces`` stage (its params) on the given images, each first given a grey
    ``margin`` (``add_margin``; 0: the files as they are): the accepted faces (the faces
    dataset's rows: ``source`` "<subject>/<file>", ``identity``, ``landmarks``, ``hr`` 3 x H x W
    uint8, and ``photo_box``, the part of the crop that is photo) and the rejects (``source``,
    ``reason``, ``detail``). Identity is the subject folder (``faces.identity: parent``) and
    there is no split; ``work_dir`` keeps the dataset, so a second method reuses it (the stage
    resumes finished shards)."""
    if margin < 0:
        raise ValueError("the margin must be >= 0")
    inputs = work_dir / "inputs"
    photos: dict[str, tuple[int, int, int]] = {}  # source -> (margin px, width, height)
    shutil.rmtree(inputs, ignore_errors=True)  # exactly this run's images, nothing left over
    for subject, paths in files.items():
        (inputs / subject).mkdir(parents=True)
        bar = tqdm(paths, f"ingest: {subject}", leave=False, disable=not (margin and progress))
        for f in bar:
            dst = inputs / subject / (staged_name(f) if margin else f.name)
            if margin:
                photos[f"{subject}/{dst.name}"] = add_margin(f, dst, margin)
                continue
            try:  # links, not copies: the folder may be read-only, the files large
                dst.symlink_to(f.resolve())
            except OSError:
                shutil.copy2(f, dst)
    faces_params = {
        **group(params, "faces"),
        "identity": "parent",
        "identity_pattern": None,
        "test_fraction": 0.0,
    }
    out = work_dir / "faces"
    build_faces(
        inputs, out, faces_params, group(params, "shards"), int(params.get("seed", 0)),
        workers=workers, progress=progress,
    )  # fmt: skip
    shutil.rmtree(inputs)  # rewritten on every run anyway (the faces dataset is what is kept)
    ds = ShardDataset(out, images=["hr"])
    rows = [ds[i] for i in range(len(ds))]
    for r in rows:
        m, w, h = photos.get(r["source"], (0, r["width"], r["height"]))
        r["photo_box"] = photo_box(r["align_matrix"].numpy(), m, w, h, r["hr"].shape[-1])
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    return rows, rejects


def load_method(
    method: str | None, checkpoint: str | Path | None, task: str
) -> tuple[str, torch.nn.Module | None, dict[str, Any]]:
    """(method, network or None for bicubic, record fields): a ``task`` checkpoint of
    the named network, or bicubic without one; anything else is refused before any image is read."""
    if method is None:
        method = "bicubic" if checkpoint is None else load_model(checkpoint)[1]["network"]
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "bicubic":
        if checkpoint is not None:
            raise ValueError("bicubic takes no checkpoint")
        return method, None, {"parameters": 0}
    if checkpoint is None:
        raise ValueError(
            f"method {method!r} needs a checkpoint (e.g. artifacts/models/{method}-{task})"
        )
    model, _ = load_model(checkpoint, network=method, task=task)  # CheckpointError otherwise
    return (
        method,
        model,
        {"parameters": metrics.parameter_count(model), "checkpoint": str(checkpoint)},
    )


def write_grid(
    path: str | Path, lr: np.ndarray, outputs: np.ndarray | None, *more: np.ndarray
) -> None:
    """A sample grid, one row per LR input (uint8 N x h x w x 3): LR (nearest) | bicubic |
    method (``outputs``; None for bicubic itself) | each of ``more`` (N x H x W x 3: targets,
    references)."""
    size = (outputs if outputs is not None else more[0]).shape[1]
    scale = size // lr.shape[1]
    cols = [lr.repeat(scale, 1).repeat(scale, 2), bicubic(lr, size)]
    cols += ([outputs] if outputs is not None else []) + list(more)
    write_png(Path(path), tile_grid([list(r) for r in zip(*cols, strict=True)]))


def cell(record: dict[str, Any], key: str, digits: int = 3) -> str:
    """A table cell: the record's value rounded, "-" for a missing one."""
    v = record.get(key)
    return "-" if v is None else f"{v:.{digits}f}"
