"""A tiny dataset writer used by the interruption test: ``python -m tests.slow_writer OUT DELAY``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from datagen.core.seeding import sample_rng
from datagen.core.shards import DatasetSpec, ImageSpec, ItemResult, write_dataset

SPEC = DatasetSpec(
    images={"img": ImageSpec((32, 32, 3)), "mask": ImageSpec((32, 32))},
    columns={
        "key": pa.string(),
        "value": pa.float32(),
        "pts": pa.list_(pa.list_(pa.float32(), 2), 3),
    },
)
N_ITEMS, PER_SHARD = 24, 5
_delay = 0.0


def make_sample(key: str) -> dict:
    rng = sample_rng(0, "faces", key)
    return {
        "key": key,
        "value": float(rng.normal()),
        "pts": rng.normal(size=(3, 2)).astype(np.float32),
        "img": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "mask": (rng.random((32, 32)) > 0.5).astype(np.uint8) * 255,
    }


def process(key: str) -> ItemResult:
    time.sleep(_delay)
    if key.endswith("7"):  # every tenth-ish item is a reject, to exercise the rejects table
        return ItemResult(rejects=[{"source": key, "reason": "test reject", "detail": "ends in 7"}])
    return ItemResult(samples=[make_sample(key)])


def set_delay(delay: float) -> None:
    global _delay
    _delay = delay


def write(out: Path, delay: float = 0.0, workers: int = 1, encoding: str = "delta-zstd") -> dict:
    keys = [f"item-{i:03d}" for i in range(N_ITEMS)]
    spec = DatasetSpec(SPEC.images, SPEC.columns, encoding)
    return write_dataset(
        out,
        spec,
        keys,
        process,
        code_module="tests.slow_writer",
        item_keys=keys,
        params_fingerprint="test",
        items_per_shard=PER_SHARD,
        workers=workers,
        initializer=set_delay,
        initargs=(delay,),
        progress=False,
    )


if __name__ == "__main__":
    write(Path(sys.argv[1]), float(sys.argv[2]))
