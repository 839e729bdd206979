"""What an export reads: a shard dataset's index rows (split, filter) and image columns, cut
into chunks of one source shard and one split each."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.core.shards import META_IMAGES, META_SHARDS, ImageSpec

ID_COLUMNS = ("pair_id", "face_id")  # the file-name column, first one the index has
SPLITS = ("train", "test", "all")
NO_SPLIT = "all"  # the split of every row of a dataset without a ``split`` column
_PYTHON_EXPR = re.compile(r"\bpl\.")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class ExportError(ValueError):
    """Export input that cannot be used; the message names the folder, column or filter."""


@dataclass(frozen=True)
class Chunk:
    """Rows of one split stored in one source shard: the unit an export writes and resumes."""

    split: str
    shard: str
    rows: np.ndarray  # int64 (n,): positions in ``Selection.index``
    source_rows: np.ndarray  # int64 (n,): the same rows' positions inside ``shard``

    @property
    def name(self) -> str:
        return f"{self.split}/{self.shard.removesuffix('.parquet')}"


@dataclass(frozen=True)
class Selection:
    """The rows and image columns to export from the dataset at ``root``."""

    root: Path
    index: pa.Table  # the selected index rows, every index column, in index order
    images: dict[str, tuple[ImageSpec, str]]  # column -> (shape/dtype, shard encoding)
    id_column: str
    splits: list[str]
    chunks: list[Chunk]
    source_id: str  # hash of the source's shard checksums: which data this is
    filter: str

    def split_rows(self, split: str) -> np.ndarray:
        """Positions in ``index`` of ``split``'s rows, in index order."""
        return np.concatenate(
            [c.rows for c in self.chunks if c.split == split] or [np.empty(0, np.int64)]
        )


def _read_index(root: Path) -> tuple[pa.Table, dict]:
    if not root.exists():
        raise ExportError(f"{root} does not exist")
    if not root.is_dir():
        raise ExportError(f"{root} is not a folder: give a dataset folder such as data/pairs/pose")
    path = root / "index.parquet"
    if not path.is_file():
        raise ExportError(
            f"{root} is not a facepairs shard dataset: it has no index.parquet "
            "(give a dataset folder such as data/pairs/pose or data/faces)"
        )
    try:
        table = pq.read_table(path)
    except Exception as e:
        raise ExportError(f"{path} is not readable as Parquet: {e}") from e
    meta = table.schema.metadata or {}
    if META_IMAGES not in meta or META_SHARDS not in meta:
        raise ExportError(
            f"{root} is not a facepairs shard dataset: {path.name} lacks the shard metadata"
        )
    missing = [s for s in json.loads(meta[META_SHARDS]) if not (root / s).is_file()]
    if missing:
        raise ExportError(f"{root}: shard(s) listed in the index are missing: {missing}")
    return table.replace_schema_metadata(None), meta


def _image_columns(
    meta: dict, index_columns: Sequence[str], wanted: Sequence[str] | None, root: Path
) -> dict[str, tuple[ImageSpec, str]]:
    images = json.loads(meta[META_IMAGES])
    names = list(images) if wanted is None else list(wanted)
    if not names:
        raise ExportError("--columns is empty: name at least one image column")
    for name in names:
        if name in images:
            continue
        if name in index_columns:
            raise ExportError(
                f"{name!r} is an index column of {root} (every index column is exported in the "
                f"metadata); --columns picks image columns: {', '.join(images)}"
            )
        raise ExportError(f"unknown column {name!r}: {root} has image columns {', '.join(images)}")
    if len(set(names)) != len(names):
        raise ExportError(f"--columns names a column twice: {','.join(names)}")
    return {
        k: (ImageSpec(tuple(images[k]["shape"]), images[k]["dtype"]), images[k]["encoding"])
        for k in names
    }


def parse_filter(text: str) -> pl.Expr:
    """A polars expression from the command line: Python (``pl.col("yaw").abs() > 40``) when it
    uses ``pl.``, otherwise SQL (``abs(yaw) > 40 AND mask_kind = 'square'``)."""
    text = text.strip()
    if _PYTHON_EXPR.search(text):
        try:
            # The user's own expression from their own command line, evaluated as they would in
            # a Python session; only ``pl`` is in scope so a typo fails with a clear message.
            expr = eval(text, {"__builtins__": {}, "pl": pl}, {})
        except Exception as e:
            raise ExportError(f"--filter {text!r} is not a polars expression: {e}") from e
        if not isinstance(expr, pl.Expr):
            raise ExportError(f"--filter {text!r} gives a {type(expr).__name__}, not an expression")
        return expr
    try:
        return pl.sql_expr(text)
    except Exception as e:
        raise ExportError(f"--filter {text!r} is not a SQL expression polars reads: {e}") from e


def _selected_positions(
    index: pl.DataFrame, split: str, filter_text: str | None, root: Path
) -> np.ndarray:
    df = index.with_row_index("__position")
    if split != "all":
        have = sorted(set(df["split"].to_list())) if "split" in df.columns else [NO_SPLIT]
        if split not in have:
            raise ExportError(f"{root} has no {split!r} rows (its splits: {', '.join(have)})")
        df = df.filter(pl.col("split") == split)
    n_split = len(df)
    if filter_text:
        expr = parse_filter(filter_text)
        try:
            df = df.filter(expr)
        except pl.exceptions.ColumnNotFoundError as e:
            raise ExportError(
                f"--filter {filter_text!r} names a column the index lacks ({e}); index columns: "
                f"{', '.join(index.columns)}"
            ) from e
        except pl.exceptions.PolarsError as e:
            raise ExportError(f"--filter {filter_text!r} cannot be applied: {e}") from e
        if len(df) == 0:
            raise ExportError(
                f"--filter {filter_text!r} matches none of the {n_split} rows of {root}"
                + ("" if split == "all" else f" (split {split})")
            )
    return df["__position"].to_numpy().astype(np.int64)


def id_column_of(columns: Sequence[str]) -> str | None:
    """The column exported files are named by: the first of ``ID_COLUMNS`` present."""
    return next((c for c in ID_COLUMNS if c in columns), None)


def _check_ids(ids: list[str], column: str, root: Path) -> None:
    bad = [i for i in ids if not isinstance(i, str) or not _SAFE_NAME.match(i)]
    if bad:
        raise ExportError(f"{root}: {column} values that cannot be file names: {bad[:3]}")
    if len(set(ids)) != len(ids):
        raise ExportError(f"{root}: {column} is not unique, exported files would collide")


def select(
    root: str | Path,
    split: str = "all",
    columns: Sequence[str] | None = None,
    filter: str | None = None,
) -> Selection:
    """Open the dataset at ``root`` and pick its rows (``split``: train, test or all; ``filter``:
    see ``parse_filter``) and image columns (``columns``; default every one)."""
    root = Path(root)
    if split not in SPLITS:
        raise ExportError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    table, meta = _read_index(root)
    images = _image_columns(meta, table.column_names, columns, root)
    id_column = id_column_of(table.column_names)
    if id_column is None:
        raise ExportError(f"{root}: the index has none of the id columns {ID_COLUMNS}")
    positions = _selected_positions(pl.from_arrow(table), split, filter, root)
    selected = table.take(pa.array(positions))
    _check_ids(selected.column(id_column).to_pylist(), id_column, root)

    splits_of = (
        selected.column("split").to_pylist()
        if "split" in selected.column_names
        else [NO_SPLIT] * selected.num_rows
    )
    shard_of = selected.column("shard").to_pylist()
    source_row = selected.column("row").to_numpy()
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(splits_of, shard_of, strict=True)):
        groups.setdefault(key, []).append(i)
    chunks = [
        Chunk(s, shard, np.asarray(rows, np.int64), source_row[rows].astype(np.int64))
        for (s, shard), rows in sorted(groups.items())
    ]
    return Selection(
        root=root,
        index=selected,
        images=images,
        id_column=id_column,
        splits=sorted(set(splits_of)),
        chunks=chunks,
        source_id=hashlib.sha256(meta[META_SHARDS]).hexdigest(),
        filter=filter or "",
    )
