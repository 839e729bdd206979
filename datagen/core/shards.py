"""Parquet-indexed image shards: the storage contract every stage shares.

A dataset is a folder of ``shard-NNNNN.parquet`` files (image columns + metadata columns) and an
``index.parquet`` with one row per sample: every non-image column plus ``shard`` and ``row``.
Inputs that produce no sample are listed, with a reason, in ``rejects.parquet``.

Work is cut into chunks of ``items_per_shard`` input items *before* anything runs; chunk ``i``
becomes ``shard-i``. Shards are written to a temporary name and renamed, and each records a
fingerprint of its params and inputs, so a re-run skips shards that are already complete and
redoes the rest. Output bytes depend only on the items and params, never on worker count.

Each shard's fingerprint covers the code of the stage that wrote it (``datagen.core.code``): the
import closure of its stage module, so editing unrelated code leaves the shards valid.

The command line (``python -m datagen.tools.shards show|verify``) is ``datagen.tools.shards``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.core import code
from datagen.core.params import ParamGroup

FORMAT_VERSION = 1
META_IMAGES = b"facepairs.images"
META_FINGERPRINT = b"facepairs.fingerprint"
META_REJECTS = b"facepairs.rejects"
META_SHARDS = b"facepairs.shards"
META_FORMAT = b"facepairs.format"
ENCODINGS = ("delta-zstd", "zstd", "png", "raw")
SHARD_GLOB = "shard-*.parquet"
_ZSTD = pa.Codec("zstd", compression_level=1)


@dataclass(frozen=True)
class ShardsParams(ParamGroup):
    """The ``shards`` param group: how every dataset is stored."""

    GROUP = "shards"
    encoding: str = "delta-zstd"  # delta-zstd | zstd | png | raw (all lossless)
    samples_per_shard: int = 1024  # about this many samples per shard file

    def validate(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"shards.encoding must be one of {ENCODINGS}, not {self.encoding!r}")
        if self.samples_per_shard < 1:
            raise ValueError("shards.samples_per_shard must be >= 1")

    def items_per_shard(self, samples_per_item: int = 1) -> int:
        """Input items per shard when each item gives ``samples_per_item`` samples; work is
        cut by input item, so a shard holds about ``samples_per_shard`` samples."""
        return max(1, self.samples_per_shard // max(1, samples_per_item))


# --------------------------------------------------------------------------- image encoding


@dataclass(frozen=True)
class ImageSpec:
    """One image column: fixed shape, uint8."""

    shape: tuple[int, ...]
    dtype: str = "uint8"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def _delta(a: np.ndarray) -> np.ndarray:
    """Differences to the pixel above, then to the left (mod 256): smooth faces become near-zero
    bytes, which zstd packs about as small as PNG while decoding about 3x faster (README)."""
    d = a.copy()
    d[1:] -= a[:-1]
    e = d.copy()
    e[:, 1:] -= d[:, :-1]
    return e


def _undelta(e: np.ndarray) -> np.ndarray:
    return np.cumsum(np.cumsum(e, axis=1, dtype=np.uint8), axis=0, dtype=np.uint8)


def encode_image(image: np.ndarray, spec: ImageSpec, encoding: str) -> bytes:
    """Losslessly encode one image.

    ``delta-zstd``: 2-D delta filter then zstd; ``zstd``: raw bytes, zstd; ``png``: PNG file
    bytes; ``raw``: raw bytes (the Parquet column is then zstd-compressed page-wise).
    """
    a = np.ascontiguousarray(image)
    if a.shape != spec.shape or a.dtype != np.dtype(spec.dtype):
        raise ValueError(f"image {a.shape} {a.dtype} does not match column spec {spec}")
    if encoding == "raw":
        return a.tobytes()
    if encoding == "delta-zstd":
        return _ZSTD.compress(_delta(a).tobytes(), asbytes=True)
    if encoding == "zstd":
        return _ZSTD.compress(a.tobytes(), asbytes=True)
    if encoding == "png":
        # OpenCV stores BGR; swap so the PNG file itself shows the right colours.
        bgr = a[..., ::-1] if a.ndim == 3 and a.shape[2] == 3 else a
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ValueError("PNG encoding failed")
        return buf.tobytes()
    raise ValueError(f"unknown image encoding {encoding!r}; choose one of {ENCODINGS}")


def decode_image(buf: bytes, spec: ImageSpec, encoding: str) -> np.ndarray:
    if encoding == "raw":
        raw = buf
    elif encoding == "delta-zstd":
        e = np.frombuffer(
            _ZSTD.decompress(buf, decompressed_size=spec.nbytes, asbytes=True), np.uint8
        )
        return _undelta(e.reshape(spec.shape))
    elif encoding == "zstd":
        raw = _ZSTD.decompress(buf, decompressed_size=spec.nbytes, asbytes=True)
    elif encoding == "png":
        a = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
        if a is None:
            raise ValueError("PNG decoding failed")
        if a.ndim == 3 and a.shape[2] == 3:
            a = a[..., ::-1]
        raw = np.ascontiguousarray(a).tobytes()
    else:
        raise ValueError(f"unknown image encoding {encoding!r}")
    if len(raw) != spec.nbytes:
        raise ValueError(f"decoded {len(raw)} bytes, expected {spec.nbytes} for {spec.shape}")
    return np.frombuffer(raw, dtype=spec.dtype).reshape(spec.shape)


# --------------------------------------------------------------------------- writing


@dataclass
class ItemResult:
    """What processing one input item gave: samples (image arrays + metadata) and rejects."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetSpec:
    """Columns of a dataset: image columns with their shapes, metadata columns with Arrow types."""

    images: dict[str, ImageSpec]
    columns: dict[str, pa.DataType]
    encoding: str = "delta-zstd"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"shards.encoding must be one of {ENCODINGS}, not {self.encoding!r}")
        clash = set(self.images) & (set(self.columns) | {"shard", "row"})
        if clash:
            raise ValueError(f"column names used twice: {sorted(clash)}")

    def images_meta(self) -> dict[str, dict]:
        return {
            k: {"shape": list(v.shape), "dtype": v.dtype, "encoding": self.encoding}
            for k, v in self.images.items()
        }

    def schema(self, extra: dict[bytes, bytes]) -> pa.Schema:
        fields = [pa.field(k, t) for k, t in self.columns.items()]
        for k, v in self.images.items():
            meta = {b"shape": json.dumps(list(v.shape)).encode(), b"dtype": v.dtype.encode()}
            meta[b"encoding"] = self.encoding.encode()
            fields.append(pa.field(k, pa.binary(), metadata=meta))
        meta = {META_IMAGES: json.dumps(self.images_meta()).encode(), META_FORMAT: b"1"}
        return pa.schema(fields, metadata={**meta, **extra})


def _arrow_column(values: list, dtype: pa.DataType) -> pa.Array:
    """Build an Arrow array; numeric fixed-size lists without nulls go through numpy (fast,
    exact dtype)."""
    if (
        pa.types.is_fixed_size_list(dtype)
        and values
        and all(isinstance(v, np.ndarray) for v in values)
    ):
        inner, sizes = dtype, []
        while pa.types.is_fixed_size_list(inner):
            sizes.append(inner.list_size)
            inner = inner.value_type
        flat = np.stack([np.asarray(v).reshape(sizes) for v in values]).reshape(-1)
        arr: pa.Array = pa.array(flat.astype(inner.to_pandas_dtype()), type=inner)
        for size in reversed(sizes):
            arr = pa.FixedSizeListArray.from_arrays(arr, size)
        return arr
    return pa.array(values, type=dtype)


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.parquet"


def _atomic_write_table(table: pa.Table, path: Path, compression: dict[str, str]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(
            table,
            tmp,
            compression=compression,
            row_group_size=64,
            write_page_checksum=True,
            write_statistics=False,
        )
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_shard(
    path: Path, spec: DatasetSpec, results: list[ItemResult], fingerprint: str
) -> None:
    samples = [s for r in results for s in r.samples]
    rejects = [j for r in results for j in r.rejects]
    data: dict[str, pa.Array] = {}
    for k, t in spec.columns.items():
        data[k] = _arrow_column([s[k] for s in samples], t)
    for k, v in spec.images.items():
        data[k] = pa.array([encode_image(s[k], v, spec.encoding) for s in samples], pa.binary())
    extra = {META_FINGERPRINT: fingerprint.encode(), META_REJECTS: json.dumps(rejects).encode()}
    table = pa.table(data, schema=spec.schema(extra))
    compression = {k: "zstd" for k in spec.columns}
    img_codec = "zstd" if spec.encoding == "raw" else "none"
    compression.update({k: img_codec for k in spec.images})
    _atomic_write_table(table, path, compression)


def _shard_fingerprint(path: Path) -> str | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # unreadable footer: treat as absent, it gets rewritten
        return None
    value = meta.get(META_FINGERPRINT)
    return value.decode() if value else None


def fingerprint_of(*parts: Any) -> str:
    """Stable hash of JSON-able parts (params, item keys, input checksums)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_dataset(
    out_dir: Path,
    spec: DatasetSpec,
    items: Sequence[Any],
    process: Callable[[Any], ItemResult],
    *,
    code_module: str,
    item_keys: Sequence[Any],
    params_fingerprint: str,
    items_per_shard: int,
    workers: int = 0,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    desc: str = "items",
    progress: bool = True,
) -> dict[str, int]:
    """Process ``items`` into shards under ``out_dir``, resuming shards already complete.

    ``process`` must be a picklable top-level function; ``initializer(*initargs)`` runs once per
    worker process (and once in-process when ``workers == 1``). ``item_keys[i]`` identifies
    item i (path + content checksum, say) for the shard fingerprints; ``code_module`` names the
    module whose import closure is the code the fingerprints cover (the stage module, usually
    ``__name__``). Returns counts.
    """
    from tqdm import tqdm

    if items_per_shard < 1:
        raise ValueError("items_per_shard must be >= 1 (check shards.samples_per_shard)")
    if len(item_keys) != len(items):
        raise ValueError("item_keys must have one key per item")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.tmp-*"):
        stale.unlink()
    workers = workers or default_workers()

    chunks = [
        range(i, min(i + items_per_shard, len(items)))
        for i in range(0, len(items), items_per_shard)
    ]
    todo: list[int] = []
    fingerprints = []
    code_fp = code.code_fingerprint(code_module)
    for c, rng in enumerate(chunks):
        fp = fingerprint_of(
            FORMAT_VERSION, code_fp, params_fingerprint, spec.encoding, [item_keys[i] for i in rng]
        )
        fingerprints.append(fp)
        if _shard_fingerprint(out_dir / shard_name(c)) != fp:
            todo.append(c)
    for old in out_dir.glob(SHARD_GLOB):
        if not old.name[6:11].isdigit() or int(old.name[6:11]) >= len(chunks):
            old.unlink()  # left over from a run with more inputs
    for name in ("index.parquet", "rejects.parquet"):
        if todo:
            (out_dir / name).unlink(missing_ok=True)

    todo_items = [i for c in todo for i in chunks[c]]
    bar = tqdm(
        total=len(todo_items), desc=desc, unit="item", disable=not progress or not todo_items
    )
    if progress and len(chunks) > len(todo):
        print(
            f"{desc}: {len(chunks) - len(todo)} of {len(chunks)} shards already complete",
            file=sys.stderr,
        )

    def results() -> Iterator[ItemResult]:
        if workers == 1 or len(todo_items) <= 1:
            if initializer is not None:
                initializer(*initargs)
            for i in todo_items:
                yield process(items[i])
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # fork after torch/OpenMP start can deadlock
        with ctx.Pool(min(workers, len(todo_items)), initializer, initargs) as pool:
            yield from pool.imap(process, [items[i] for i in todo_items], chunksize=1)

    stream = results()
    for c in todo:
        got = []
        for _ in chunks[c]:
            got.append(next(stream))
            bar.update(1)
        _write_shard(out_dir / shard_name(c), spec, got, fingerprints[c])
    bar.close()
    return finalize(out_dir, n_shards=len(chunks))


def finalize(out_dir: Path, n_shards: int) -> dict[str, int]:
    """Write ``index.parquet`` and ``rejects.parquet`` from the shards (atomically)."""
    out_dir = Path(out_dir)
    parts, rejects, checksums = [], [], {}
    images_meta = None
    for c in range(n_shards):
        path = out_dir / shard_name(c)
        pf = pq.ParquetFile(path)
        meta = pf.schema_arrow.metadata
        images_meta = json.loads(meta[META_IMAGES])
        cols = [n for n in pf.schema_arrow.names if n not in images_meta]
        t = pf.read(columns=cols)
        t = t.append_column("shard", pa.array([path.name] * t.num_rows, pa.string()))
        t = t.append_column("row", pa.array(np.arange(t.num_rows, dtype=np.int64)))
        parts.append(t.replace_schema_metadata(None))
        rejects.extend(json.loads(meta[META_REJECTS]))
        checksums[path.name] = {"sha256": sha256_file(path), "rows": t.num_rows}
    if not parts:
        raise ValueError(f"{out_dir}: no input items, nothing to index")
    index = pa.concat_tables(parts)
    index = index.replace_schema_metadata(
        {
            META_IMAGES: json.dumps(images_meta).encode(),
            META_SHARDS: json.dumps(checksums).encode(),
            META_FORMAT: b"1",
        }
    )
    _atomic_write_table(index, out_dir / "index.parquet", "zstd")
    keys = sorted({k for r in rejects for k in r})
    rej = pa.table(
        {k: pa.array([r.get(k, "") for r in rejects], pa.string()) for k in keys}
        if rejects
        else {"source": pa.array([], pa.string()), "reason": pa.array([], pa.string())}
    )
    _atomic_write_table(rej, out_dir / "rejects.parquet", "zstd")
    return {"samples": index.num_rows, "rejects": len(rejects), "shards": n_shards}


# --------------------------------------------------------------------------- reading


def read_index(root: Path):
    """The index as a polars DataFrame (no image bytes are read)."""
    import polars as pl

    path = Path(root) / "index.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {root} a facepairs dataset?")
    return pl.read_parquet(path)


def _images_meta(root: Path) -> dict[str, dict]:
    return json.loads(pq.read_schema(Path(root) / "index.parquet").metadata[META_IMAGES])


def image_specs(root: str | Path) -> dict[str, ImageSpec]:
    """Shape and dtype of each image column, from the index's schema metadata (no data read)."""
    return {
        k: ImageSpec(tuple(m["shape"]), m["dtype"]) for k, m in _images_meta(Path(root)).items()
    }


def _to_tensor(value: Any):
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, list) and value and isinstance(value[0], (int, float, list)):
        return torch.tensor(value)
    return value


def _image_tensor(a: np.ndarray):
    import torch

    t = torch.from_numpy(a.copy())
    return t.permute(2, 0, 1) if t.ndim == 3 else t.unsqueeze(0)


class ShardDataset:
    """Map-style torch dataset over a shard folder.

    ``ds[i]`` is a dict: each image column as a uint8 tensor (C x H x W; a single-channel image
    as 1 x H x W), numeric metadata as tensors, strings as they are. ``filter`` is a polars
    expression on index columns, applied before any image is read; ``images`` limits which image
    columns are decoded. ``ds.iterable()`` gives a shard-by-shard IterableDataset.
    """

    def __init__(
        self,
        root: str | Path,
        filter: Any = None,
        images: Sequence[str] | None = None,
        transform: Callable[[dict], dict] | None = None,
        cache_row_groups: int = 4,
    ):
        self.root = Path(root)
        index = read_index(self.root)
        if filter is not None:
            index = index.filter(filter)
        self.index = index
        meta = _images_meta(self.root)
        names = list(images) if images is not None else list(meta)
        unknown = set(names) - set(meta)
        if unknown:
            raise KeyError(
                f"no image column(s) {sorted(unknown)} in {self.root}; have {list(meta)}"
            )
        self.images = {
            k: (ImageSpec(tuple(meta[k]["shape"]), meta[k]["dtype"]), meta[k]["encoding"])
            for k in names
        }
        self.transform = transform
        self._rows = index.to_dicts()
        self._files: dict[str, pq.ParquetFile] = {}
        self._cache: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._cache_size = cache_row_groups

    def __len__(self) -> int:
        return len(self._rows)

    def __getstate__(self) -> dict:  # open files do not cross process boundaries
        state = self.__dict__.copy()
        state["_files"], state["_cache"] = {}, OrderedDict()
        return state

    def _row_group(self, shard: str, row: int) -> tuple[pa.Table, int]:
        pf = self._files.get(shard)
        if pf is None:
            pf = self._files[shard] = pq.ParquetFile(self.root / shard)
        start = 0
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if row < start + n:
                break
            start += n
        key = (shard, g)
        table = self._cache.get(key)
        if table is None:
            table = pf.read_row_group(g, columns=list(self.images))
            self._cache[key] = table
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return table, row - start

    def _decode(self, meta: dict, table: pa.Table, r: int) -> dict:
        out = {k: _to_tensor(v) for k, v in meta.items()}
        for k, (spec, enc) in self.images.items():
            out[k] = _image_tensor(decode_image(table.column(k)[r].as_py(), spec, enc))
        return self.transform(out) if self.transform else out

    def __getitem__(self, i: int) -> dict:
        meta = self._rows[i]
        table, r = self._row_group(meta["shard"], meta["row"])
        return self._decode(meta, table, r)

    def iterable(self, shuffle: bool = False, seed: int = 0):
        """An IterableDataset reading whole shards in turn (split across DataLoader workers)."""
        return _shard_iterable_class()(self, shuffle, seed)


def _shard_iterable_class():
    """Built on first use so importing this module does not import torch (spawned workers)."""
    global _ShardIterable
    if _ShardIterable is not None:
        return _ShardIterable
    import torch.utils.data

    class ShardIterable(torch.utils.data.IterableDataset):
        def __init__(self, ds: ShardDataset, shuffle: bool, seed: int):
            self.ds, self.shuffle, self.seed, self.epoch = ds, shuffle, seed, 0

        def __iter__(self) -> Iterator[dict]:
            by_shard: dict[str, list[int]] = {}
            for i, m in enumerate(self.ds._rows):
                by_shard.setdefault(m["shard"], []).append(i)
            shards = sorted(by_shard)
            rng = np.random.default_rng([self.seed, self.epoch])
            if self.shuffle:
                rng.shuffle(shards)
            info = torch.utils.data.get_worker_info()
            if info is not None:
                shards = shards[info.id :: info.num_workers]
            for shard in shards:
                rows = by_shard[shard]
                table = pq.read_table(self.ds.root / shard, columns=list(self.ds.images))
                order = rng.permutation(len(rows)) if self.shuffle else range(len(rows))
                for j in order:
                    meta = self.ds._rows[rows[j]]
                    yield self.ds._decode(meta, table, meta["row"])
            self.epoch += 1

    _ShardIterable = ShardIterable
    return ShardIterable


_ShardIterable = None


# --------------------------------------------------------------------------- verify


def verify(root: Path) -> list[str]:
    """Problems found in a dataset folder (empty when it is sound)."""
    root = Path(root)
    problems: list[str] = []
    index_path = root / "index.parquet"
    try:
        index = pq.read_table(index_path)
    except Exception as e:
        return [f"{index_path}: unreadable index ({e})"]
    meta = index.schema.metadata or {}
    if META_SHARDS not in meta or META_IMAGES not in meta:
        return [f"{index_path}: not a facepairs index (schema metadata missing)"]
    expected = json.loads(meta[META_SHARDS])
    images_meta = json.loads(meta[META_IMAGES])
    on_disk = sorted(p.name for p in root.glob(SHARD_GLOB))
    for name in sorted(set(on_disk) - set(expected)):
        problems.append(f"{name}: shard on disk but not in the index")
    row_col = index.column("row").to_pylist()
    rows_of: dict[str, list[int]] = {}
    for i, s in enumerate(index.column("shard").to_pylist()):
        rows_of.setdefault(s, []).append(i)
    for name in sorted(set(rows_of) - set(expected)):
        problems.append(f"{name}: index rows point at a shard with no checksum entry")
    for name, want in sorted(expected.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: listed in the index but missing")
            continue
        got = sha256_file(path)
        if got != want["sha256"]:
            problems.append(
                f"{name}: checksum mismatch (sha256 {got[:16]}..., index says {want['sha256'][:16]}...)"
            )
            continue
        try:
            table = pq.read_table(path, page_checksum_verification=True)
        except Exception as e:
            problems.append(f"{name}: unreadable ({e})")
            continue
        if table.num_rows != want["rows"]:
            problems.append(f"{name}: {table.num_rows} rows, index says {want['rows']}")
            continue
        idx_rows = rows_of.get(name, [])
        if sorted(row_col[i] for i in idx_rows) != list(range(table.num_rows)):
            problems.append(
                f"{name}: index rows do not cover rows 0..{table.num_rows - 1} exactly once"
            )
            continue
        sub = index.take(idx_rows)
        for col in sub.column_names:
            if col in ("shard", "row"):
                continue
            if col not in table.column_names:
                problems.append(f"{name}: index column {col!r} missing from shard")
                continue
            shard_vals = table.column(col).take([row_col[i] for i in idx_rows])
            if not shard_vals.equals(sub.column(col)):
                problems.append(f"{name}: column {col!r} differs between shard and index")
        for col, m in images_meta.items():
            spec = ImageSpec(tuple(m["shape"]), m["dtype"])
            for r, buf in enumerate(table.column(col).to_pylist()):
                try:
                    decode_image(buf, spec, m["encoding"])
                except Exception as e:
                    problems.append(f"{name}: row {r} column {col!r} does not decode ({e})")
                    break
    return problems
