"""The ``folders`` layout: ``OUT/<split>/<column>/<id>.png`` plus ``OUT/<split>/meta.parquet``
and ``meta.csv``. BasicSR's ``PairedImageDataset`` reads ``lr/`` and ``hr/`` as they are: its
file names match across the two folders."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from datagen.export import files
from datagen.export.selection import Chunk, Selection


def outputs(sel: Selection) -> list[str]:
    """The top-level names this layout writes under OUT: one folder per split."""
    return list(sel.splits)


def write_chunk(out: Path, sel: Selection, chunk: Chunk, pngs: Iterable[dict[str, bytes]]) -> int:
    """Write one PNG per image column for each row of ``chunk``; returns the rows written."""
    ids = sel.index.column(sel.id_column).take(chunk.rows).to_pylist()
    folders = {k: Path(out) / chunk.split / k for k in sel.images}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, row in zip(ids, pngs, strict=True):
        for k, data in row.items():
            files.write_bytes(folders[k] / f"{name}.png", data)
        n += 1
    return n


def csv_table(table: pa.Table) -> pa.Table:
    """``table`` with its list columns (landmarks, matrices, latents) as JSON text, which CSV
    can hold; every other column as it is."""
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
            col = pa.array([json.dumps(v) for v in col.to_pylist()], pa.string())
        cols[name] = col
    return pa.table(cols)


def write_meta(out: Path, sel: Selection, split: str) -> None:
    """``OUT/<split>/meta.parquet`` (the index rows of the split, every column and type) and its
    CSV twin ``meta.csv``."""
    rows = sel.index.take(sel.split_rows(split))
    folder = Path(out) / split
    folder.mkdir(parents=True, exist_ok=True)
    files.write_parquet(folder / "meta.parquet", rows, row_group_size=64 * 1024)
    files.write_csv(folder / "meta.csv", csv_table(rows))
