"""The ``hf`` layout: ``OUT/<split>-NNNNN-of-MMMMM.parquet``, the file names Hugging Face
``datasets`` maps to splits, with each image column a ``{bytes, path}`` struct of PNG bytes and
the ``huggingface`` schema metadata declaring it an ``Image`` feature; index columns keep their
Arrow types (fixed-size lists become ``List(..., length=n)`` features)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from datagen.export import files
from datagen.export.selection import Chunk, Selection

IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ROW_GROUP = 100  # rows per row group: the size the datasets docs suggest for image data


def file_names(sel: Selection) -> dict[str, str]:
    """Chunk name -> its Parquet file name, numbered within its split."""
    names = {}
    for split in sel.splits:
        chunks = [c for c in sel.chunks if c.split == split]
        for k, c in enumerate(chunks):
            names[c.name] = f"{split}-{k:05d}-of-{len(chunks):05d}.parquet"
    return names


def outputs(sel: Selection) -> list[str]:
    return list(file_names(sel).values())


def features_metadata(sel: Selection) -> bytes:
    """The schema metadata ``datasets`` reads features from; columns it does not list are typed
    from their Arrow type."""
    features = {k: {"_type": "Image"} for k in sel.images}
    return json.dumps({"info": {"features": features}}).encode()


def write_chunk(out: Path, sel: Selection, chunk: Chunk, pngs: Iterable[dict[str, bytes]]) -> int:
    """Write ``chunk``'s rows (index columns, then image columns) as one Parquet file."""
    meta = sel.index.take(chunk.rows)
    ids = meta.column(sel.id_column).to_pylist()
    images: dict[str, list[dict]] = {k: [] for k in sel.images}
    for name, row in zip(ids, pngs, strict=True):
        for k, data in row.items():
            images[k].append({"bytes": data, "path": f"{name}.png"})
    table = meta
    for k, values in images.items():
        table = table.append_column(k, pa.array(values, IMAGE_STRUCT))
    table = table.replace_schema_metadata({b"huggingface": features_metadata(sel)})
    files.write_parquet(Path(out) / file_names(sel)[chunk.name], table, ROW_GROUP)
    return table.num_rows
