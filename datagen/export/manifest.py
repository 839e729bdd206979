"""``OUT/export.json``: which export a folder holds and which chunks of it are finished.

It makes an export resumable (finished chunks are skipped on a re-run) and keeps two exports
from mixing: a folder holding another export, or files that are no export at all, is refused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen.export import files
from datagen.export.selection import ExportError, Selection

MANIFEST = "export.json"
TOOL = "facepairs.export"
VERSION = 1


def identity(sel: Selection, fmt: str, png_level: int) -> dict[str, Any]:
    """What makes two exports the same: the source data, format, rows and columns."""
    return {
        "format": fmt,
        "source_id": sel.source_id,
        "splits": sel.splits,
        "filter": sel.filter,
        "columns": list(sel.images),
        "rows": sel.index.num_rows,
        # png-encoded shards' bytes pass through: the level changes nothing for them
        "png_level": png_level if any(enc != "png" for _, enc in sel.images.values()) else None,
    }


@dataclass
class Manifest:
    out: Path
    identity: dict[str, Any]
    source: str
    outputs: list[str]  # top-level names under ``out`` that this export owns
    done: list[str] = field(default_factory=list)
    complete: bool = False

    def save(self) -> None:
        """Write atomically, so an interrupted export never leaves a half manifest."""
        body = {
            "tool": TOOL,
            "version": VERSION,
            "source": self.source,
            "identity": self.identity,
            "outputs": self.outputs,
            "done": self.done,
            "complete": self.complete,
        }
        files.write_bytes(self.out / MANIFEST, (json.dumps(body, indent=1) + "\n").encode())

    def mark_done(self, chunk: str) -> None:
        self.done.append(chunk)
        self.save()


def _describe(ident: dict[str, Any]) -> str:
    return (
        f"format {ident.get('format')}, splits {ident.get('splits')}, columns "
        f"{ident.get('columns')}, filter {ident.get('filter') or 'none'}, {ident.get('rows')} rows, "
        f"source {str(ident.get('source_id'))[:12]}"
    )


def _load(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path} is not a readable export manifest ({e}); remove it") from e
    if not isinstance(body, dict) or body.get("tool") != TOOL:
        raise ExportError(f"{path} is not a facepairs export manifest")
    return body


def _remove(out: Path, names: list[str]) -> None:
    for name in [*names, MANIFEST]:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def claim(
    out: Path, ident: dict[str, Any], source: Path, outputs: list[str], overwrite: bool
) -> Manifest:
    """The manifest to write into: the folder's own when it holds this same export (resume),
    a new one when the folder is new or empty (or ``overwrite`` replaces another export)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder")
    old = _load(out) if out.exists() else None
    if old is None and out.exists():
        # a run killed before its first manifest leaves only temporary files: not strays
        strays = sorted(p.name for p in out.iterdir() if ".tmp-" not in p.name)
        if strays:
            raise ExportError(
                f"--out {out} holds files that are not a facepairs export ({', '.join(strays[:3])}"
                f"{', ...' if len(strays) > 3 else ''}); give an empty or new folder"
            )
    if old is not None and old.get("identity") != ident:
        if not overwrite:
            raise ExportError(
                f"--out {out} holds another export ({_describe(old.get('identity', {}))}); "
                f"this one is {_describe(ident)}. Give another --out, or --overwrite to replace it"
            )
        _remove(out, list(old.get("outputs", [])))
        old = None
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.rglob("*.tmp-*"):  # left by a killed run; the chunk is redone
        stale.unlink()
    if old is None:
        manifest = Manifest(out, ident, str(source), outputs)
        manifest.save()
        return manifest
    return Manifest(
        out, ident, str(source), outputs, list(old.get("done", [])), bool(old.get("complete"))
    )
