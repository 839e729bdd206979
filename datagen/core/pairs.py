"""What every pairs stage shares: the faces it starts from, per-pair seeds, the degrade columns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.core.shards import META_SHARDS, ShardDataset, read_index


@dataclass(frozen=True)
class FaceRef:
    """One aligned face of ``data/faces``, as a pairs stage's input item."""

    face_id: str
    identity: str
    split: str
    position: int  # row of the faces index
    landmarks: np.ndarray  # 68 x 2, HR pixels


def face_refs(
    faces_dir: Path, landmarks_column: str = "landmarks"
) -> tuple[list[FaceRef], list[tuple[str, str]]]:
    """Every face in ``faces_dir`` and, per face, a key that changes when its image bytes do
    (face_id + the SHA-256 of the shard holding it), for the pairs stage's fingerprints.
    ``landmarks_column`` picks the crop the landmarks are for (``landmarks_large``: hr_large)."""
    index = read_index(faces_dir)
    if len(index) == 0:
        raise ValueError(f"{faces_dir} holds no faces: run the faces stage first")
    sha = shard_checksums(faces_dir)
    refs, keys = [], []
    for i, r in enumerate(
        index.select("face_id", "identity", "split", landmarks_column, "shard").iter_rows(
            named=True
        )
    ):
        refs.append(
            FaceRef(
                r["face_id"],
                r["identity"],
                r["split"],
                i,
                np.asarray(r[landmarks_column], np.float64),
            )
        )
        keys.append((r["face_id"], sha[r["shard"]]))
    return refs, keys


def shard_checksums(root: Path) -> dict[str, str]:
    """SHA-256 per shard file of a dataset, as its index records them."""
    meta = pq.read_schema(Path(root) / "index.parquet").metadata[META_SHARDS]
    return {k: v["sha256"] for k, v in json.loads(meta).items()}


class FaceImages:
    """Reads aligned face images by faces-index row (one per worker process)."""

    def __init__(self, faces_dir: Path, column: str = "hr", extra: tuple[str, ...] = ()):
        self.column = column
        self.ds = ShardDataset(faces_dir, images=[column, *extra])

    def __call__(self, ref: FaceRef) -> np.ndarray:
        return self.ds[ref.position][self.column].permute(1, 2, 0).numpy()

    def all(self, ref: FaceRef) -> dict[str, np.ndarray]:
        """Every image column this reader was opened with, H x W x C uint8."""
        row = self.ds[ref.position]
        return {k: row[k].permute(1, 2, 0).numpy() for k in self.ds.images}


LANDMARKS = pa.list_(pa.list_(pa.float32(), 2), 68)

# Columns every pairs dataset carries, with the degrade step's metadata.
PAIR_COLUMNS: dict[str, pa.DataType] = {
    "pair_id": pa.string(),
    "face_id": pa.string(),
    "identity": pa.string(),
    "split": pa.string(),
    "seed": pa.uint64(),
    "angle": pa.float32(),
    "shift_x": pa.float32(),
    "shift_y": pa.float32(),
    "scale": pa.float32(),
    "degrade_matrix": pa.list_(pa.list_(pa.float64(), 3), 2),
    "landmarks": LANDMARKS,
    "landmarks_lr": LANDMARKS,
}


def fit_rejects(fits_dir: Path) -> dict[str, dict[str, str]]:
    """Faces the fits stage rejected, as this stage's reject records."""
    path = Path(fits_dir) / "rejects.parquet"
    if not path.is_file():
        return {}
    out = {}
    for r in pl.read_parquet(path).iter_rows(named=True):
        out[r["source"]] = {
            "reason": f"no fit: {r.get('reason', '')}",
            "detail": r.get("detail", "") or "",
        }
    return out


def fitted_items(
    refs: list[FaceRef], keys: list[tuple], fits_dir: Path
) -> tuple[list[tuple[FaceRef, dict[str, str] | None]], list[tuple], int]:
    """For the stages that need each face's 3-D fit: per face, ``(ref, None)`` when it has a
    fit, or ``(ref, reject)`` with the fits stage's reason when it has none; the item keys
    (the face's key plus its fit shard's checksum, or the reject reason); and how many faces
    have a fit."""
    if not (Path(fits_dir) / "index.parquet").is_file():
        raise FileNotFoundError(f"{fits_dir}/index.parquet not found: run the fits stage first")
    fit_shard = dict(read_index(fits_dir).select("face_id", "shard").iter_rows())
    fit_sha = shard_checksums(fits_dir)
    rejected = fit_rejects(Path(fits_dir))
    items, item_keys = [], []
    for ref, key in zip(refs, keys, strict=True):
        if ref.face_id in fit_shard:
            items.append((ref, None))
            item_keys.append((*key, fit_sha[fit_shard[ref.face_id]]))
        else:
            why = rejected.get(
                ref.face_id, {"reason": "no fit", "detail": f"{ref.face_id} not in {fits_dir}"}
            )
            items.append((ref, why))
            item_keys.append((*key, why["reason"]))
    return items, item_keys, len(fit_shard)


def pair_meta(
    ref: FaceRef, pair_id: str, seed: int, degrade_meta: dict[str, Any]
) -> dict[str, Any]:
    return {
        "pair_id": pair_id,
        "face_id": ref.face_id,
        "identity": ref.identity,
        "split": ref.split,
        "seed": seed,
        "angle": degrade_meta["angle"],
        "shift_x": degrade_meta["shift_x"],
        "shift_y": degrade_meta["shift_y"],
        "scale": degrade_meta["scale"],
        "degrade_matrix": degrade_meta["matrix"],
        "landmarks": ref.landmarks.astype(np.float32),
        "landmarks_lr": degrade_meta["landmarks_lr"],
    }
