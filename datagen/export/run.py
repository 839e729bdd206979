"""The export loop: select, claim the output folder, write the missing chunks, finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from datagen.export import folders, hf, manifest
from datagen.export.encode import PNG_LEVEL, chunk_pngs
from datagen.export.selection import ExportError, select

FORMATS = {"folders": folders, "hf": hf}


@dataclass(frozen=True)
class ExportReport:
    out: Path
    rows: int  # rows the export holds
    written: int  # rows written by this run
    skipped: int  # rows of chunks a previous run had finished
    per_split: dict[str, int]
    seconds: float


def export(
    source: str | Path,
    out: str | Path,
    fmt: str = "folders",
    split: str = "all",
    columns: Sequence[str] | None = None,
    filter: str | None = None,
    overwrite: bool = False,
    png_level: int = PNG_LEVEL,
    progress: bool = True,
) -> ExportReport:
    """Export the dataset at ``source`` to ``out`` in layout ``fmt`` (``folders`` or ``hf``);
    see ``datagen.export``. Re-running an interrupted export finishes it."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not 0 <= png_level <= 9:
        raise ExportError(f"--png-level must be 0..9, not {png_level}")
    start = time.perf_counter()
    layout = FORMATS[fmt]
    sel = select(source, split, columns, filter)
    out = Path(out)
    m = manifest.claim(
        out,
        manifest.identity(sel, fmt, png_level),
        Path(source).resolve(),
        layout.outputs(sel),
        overwrite,
    )
    per_split = {s: len(sel.split_rows(s)) for s in sel.splits}
    todo = [c for c in sel.chunks if c.name not in m.done]
    written = 0
    if not m.complete:
        bar = tqdm(
            total=sum(len(c.rows) for c in todo),
            desc=f"export {fmt}",
            unit="pair",
            disable=not progress or not todo,
        )
        for chunk in todo:
            pngs = chunk_pngs(sel.root, chunk, sel.images, png_level)
            written += layout.write_chunk(out, sel, chunk, pngs)
            m.mark_done(chunk.name)
            bar.update(len(chunk.rows))
        bar.close()
        if fmt == "folders":
            for s in sel.splits:
                folders.write_meta(out, sel, s)
        m.complete = True
        m.save()
    return ExportReport(
        out,
        sel.index.num_rows,
        written,
        sel.index.num_rows - written,
        per_split,
        time.perf_counter() - start,
    )
