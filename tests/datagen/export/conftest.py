"""A small pairs dataset (4 shards, two splits, RGB and grey image columns) for the export
tests, written with the real shard writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from datagen.core.shards import DatasetSpec, ImageSpec, ItemResult, write_dataset

IMAGES = {"lr": ImageSpec((4, 4, 3)), "hr": ImageSpec((32, 32, 3)), "mask": ImageSpec((32, 32))}
COLUMNS = {
    "pair_id": pa.string(),
    "face_id": pa.string(),
    "split": pa.string(),
    "yaw": pa.float32(),
    "mask_kind": pa.string(),
    "landmarks": pa.list_(pa.list_(pa.float32(), 2), 3),
}
N_ITEMS, PER_SHARD = 30, 8


def make_pair(i: int) -> dict:
    rng = np.random.default_rng([0, i])
    return {
        "pair_id": f"{i:03d}-a1b2-yaw{'+' if i % 2 else '-'}{i % 5 * 20}",
        "face_id": f"{i:03d}-a1b2",
        "split": "test" if i % 4 == 0 else "train",
        "yaw": float(i % 5 * 20 * (1 if i % 2 else -1)),
        "mask_kind": "square" if i % 3 == 0 else "irregular",
        "landmarks": rng.normal(size=(3, 2)).astype(np.float32),
        "lr": rng.integers(0, 256, (4, 4, 3), dtype=np.uint8),
        "hr": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "mask": (rng.random((32, 32)) > 0.5).astype(np.uint8) * 255,
    }


def process(i: int) -> ItemResult:
    return ItemResult(samples=[make_pair(i)])


def write_pairs(out: Path, encoding: str = "delta-zstd") -> Path:
    items = list(range(N_ITEMS))
    write_dataset(
        out,
        DatasetSpec(IMAGES, COLUMNS, encoding),
        items,
        process,
        code_module="datagen.export",
        item_keys=items,
        params_fingerprint="export-test",
        items_per_shard=PER_SHARD,
        workers=1,
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("src") / "pairs")
