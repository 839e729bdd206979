"""Photos -> aligned faces: identity rule, split by identity, detect, landmark, align, crop."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from datagen.core.images import ImageRejected, is_image_path, load_rgb
from datagen.core.params import ParamGroup, run_knob
from datagen.core.seeding import sample_rng
from datagen.core.shards import (
    DatasetSpec,
    ImageSpec,
    ItemResult,
    ShardsParams,
    fingerprint_of,
    write_dataset,
)
from datagen.face import align
from datagen.face.landmarks import FaceDetector, make_landmarker

SPLITS = ("train", "test")


@dataclass(frozen=True)
class FacesParams(ParamGroup):
    """The ``faces`` param group (see params.yaml and the README for each knob)."""

    GROUP = "faces"
    input: str = "datagen/bundled/london-faces/photos"
    identity: str = "prefix"
    identity_pattern: str | None = None
    test_fraction: float = 0.2
    detector: str = "hog"
    upsample: int | str = "auto"
    multi_face: str = "largest"
    landmarks: str = "dlib"
    hr_size: int = 128
    large_size: int = 256
    zoom: float = 1.0
    border: str = "reflect"
    min_side: int = 32
    min_face_size: int = 40
    max_pixels: int = 100_000_000
    workers: int = run_knob(0)

    def validate(self) -> None:
        if self.multi_face not in ("largest", "reject"):
            raise ValueError(
                f"faces.multi_face must be 'largest' or 'reject', not {self.multi_face!r}"
            )
        if self.border not in align.BORDER_MODES:
            raise ValueError(f"faces.border must be one of {list(align.BORDER_MODES)}")
        if self.hr_size < 16 or self.large_size < self.hr_size:
            raise ValueError("faces.hr_size must be >= 16 and faces.large_size >= faces.hr_size")


def dataset_spec(cfg: FacesParams, encoding: str) -> DatasetSpec:
    lm = pa.list_(pa.list_(pa.float32(), 2), 68)
    return DatasetSpec(
        images={
            "hr": ImageSpec((cfg.hr_size, cfg.hr_size, 3)),
            "hr_large": ImageSpec((cfg.large_size, cfg.large_size, 3)),
        },
        columns={
            "face_id": pa.string(),
            "identity": pa.string(),
            "split": pa.string(),
            "source": pa.string(),
            "source_sha1": pa.string(),
            "width": pa.int32(),
            "height": pa.int32(),
            "n_faces": pa.int16(),
            "bbox": pa.list_(pa.float32(), 4),
            "detector_score": pa.float32(),
            "landmarks": lm,
            "landmarks_large": lm,
            "landmarks_source": lm,
            "align_matrix": pa.list_(pa.list_(pa.float64(), 3), 2),
            "align_nrmse": pa.float32(),
            "outside_fraction": pa.float32(),
        },
        encoding=encoding,
    )


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class FaceItem:
    path: str  # absolute
    source: str  # relative to the input root, POSIX separators
    sha1: str
    identity: str | None
    split: str | None


def list_inputs(root: Path) -> list[Path]:
    """Every file under ``root`` (recursively), sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"faces.input {root} is not a folder")
    return sorted(
        (p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()
    )


def identity_of(source: str, rule: str, pattern: str | None = None) -> str | None:
    """Identity from a relative path.

    ``prefix``: the file name up to its first ``_`` (``001_03.jpg`` -> ``001``; a name without
    ``_`` is its own identity); ``parent``: the folder the file is in (``alice/1.jpg`` ->
    ``alice``; none for files at the top); ``regex``: group 1 of ``pattern`` searched in the
    relative path. ``None`` when the rule gives nothing.
    """
    p = Path(source)
    if rule == "prefix":
        return p.stem.split("_", 1)[0] or None
    if rule == "parent":
        return p.parent.name or None
    if rule == "regex":
        if not pattern:
            raise ValueError("faces.identity=regex needs faces.identity_pattern")
        m = re.search(pattern, source)
        return (m.group(1) if m and m.groups() else None) or None
    raise ValueError(f"faces.identity must be 'prefix', 'parent' or 'regex', not {rule!r}")


def split_identities(
    identities: list[str], test_fraction: float, rng: np.random.Generator
) -> dict[str, str]:
    """Assign whole identities to train/test: exactly round(fraction * n) go to test."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("faces.test_fraction must be in [0, 1)")
    ids = sorted(set(identities))
    n_test = int(round(test_fraction * len(ids)))
    if test_fraction > 0 and len(ids) >= 2:
        n_test = min(max(n_test, 1), len(ids) - 1)
    test = set(rng.permutation(len(ids))[:n_test].tolist())
    return {x: ("test" if i in test else "train") for i, x in enumerate(ids)}


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_items(
    root: Path, rule: str, pattern: str | None, test_fraction: float, rng: np.random.Generator
) -> list[FaceItem]:
    files = list_inputs(root)
    sources = [p.relative_to(root).as_posix() for p in files]
    ids = [identity_of(s, rule, pattern) for s in sources]
    split = split_identities([i for i in ids if i is not None], test_fraction, rng)
    return [
        FaceItem(str(p.resolve()), s, file_sha1(p), i, split.get(i) if i else None)
        for p, s, i in zip(files, sources, ids, strict=True)
    ]


# --------------------------------------------------------------------------- per-photo work

_worker: dict[str, Any] = {}


def init_worker(cfg: dict[str, Any]) -> None:
    """Load the detector and landmark models once per process."""
    c = FacesParams(**cfg)
    _worker["cfg"] = c
    _worker["detector"] = FaceDetector(c.detector, c.upsample)
    _worker["landmarker"] = make_landmarker(c.landmarks)


def _reject(item: FaceItem, reason: str, detail: str = "") -> ItemResult:
    return ItemResult(rejects=[{"source": item.source, "reason": reason, "detail": detail}])


def process_photo(item: FaceItem) -> ItemResult:
    """One photo -> one aligned face sample, or one reject. Never raises on bad input."""
    try:
        return _process(item, _worker["cfg"], _worker["detector"], _worker["landmarker"])
    except Exception as e:  # a bug or a library failure on one file must not stop the run
        return _reject(item, "error", f"{type(e).__name__}: {e}")


def _process(item: FaceItem, cfg: FacesParams, detector: FaceDetector, landmarker) -> ItemResult:
    if not is_image_path(Path(item.source)):
        return _reject(
            item,
            "unsupported extension",
            f"{Path(item.source).suffix or '(none)'} is not an image type",
        )
    if item.identity is None:
        return _reject(item, "no identity", "the identity rule gives nothing for this path")
    try:
        rgb = load_rgb(Path(item.path), cfg.max_pixels, cfg.min_side)
    except ImageRejected as e:
        return _reject(item, e.reason, e.detail)
    found = detector.detect(rgb)
    if not found:
        return _reject(item, "no face", f"{cfg.detector} detector found no face")
    if len(found) > 1 and cfg.multi_face == "reject":
        return _reject(item, "multiple faces", f"{len(found)} faces and faces.multi_face=reject")
    det = found[0]
    x0, y0, x1, y1 = det.bbox
    if min(x1 - x0, y1 - y0) < cfg.min_face_size:
        return _reject(
            item, "face too small", f"{x1 - x0:.0f}x{y1 - y0:.0f} px box < {cfg.min_face_size}"
        )
    lm_src = landmarker(rgb, det)
    try:
        m = align.estimate_alignment(lm_src, cfg.hr_size, cfg.zoom)
    except ValueError as e:
        return _reject(item, "alignment failed", str(e))
    m_large = align.rescale_alignment(m, cfg.hr_size, cfg.large_size)
    lm = align.apply_affine(lm_src, m)
    h, w = rgb.shape[:2]
    face_id = f"{item.identity}-{hashlib.sha1(item.source.encode()).hexdigest()[:8]}"
    sample = {
        "face_id": face_id,
        "identity": item.identity,
        "split": item.split,
        "source": item.source,
        "source_sha1": item.sha1,
        "width": w,
        "height": h,
        "n_faces": len(found),
        "bbox": np.array(det.bbox, np.float32),
        "detector_score": det.score,
        "landmarks": lm.astype(np.float32),
        "landmarks_large": align.apply_affine(lm_src, m_large).astype(np.float32),
        "landmarks_source": lm_src.astype(np.float32),
        "align_matrix": m,
        "align_nrmse": align.alignment_error(lm, cfg.hr_size, cfg.zoom),
        "outside_fraction": align.outside_fraction(rgb.shape, m, cfg.hr_size),
        "hr": align.warp_crop(rgb, m, cfg.hr_size, cfg.border),
        "hr_large": align.warp_crop(rgb, m_large, cfg.large_size, cfg.border),
    }
    return ItemResult(samples=[sample])


def build_faces(
    input_root: Path | None,
    out_dir: Path,
    faces_params: dict[str, Any],
    shards_params: dict[str, Any],
    seed: int,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The ``faces`` stage: every file under ``input_root`` (None: ``faces.input``) ->
    ``out_dir`` shards + rejects; ``workers`` (None: ``faces.workers``) processes.

    Returns a summary: counts of inputs, faces, rejects by reason, identities per split.
    """
    import collections

    import pyarrow.parquet as pq

    p = FacesParams.from_params(faces_params)
    sp = ShardsParams.from_params(shards_params)
    input_root = Path(p.input if input_root is None else input_root)
    spec = dataset_spec(p, sp.encoding)
    items = make_items(
        input_root,
        p.identity,
        p.identity_pattern,
        p.test_fraction,
        sample_rng(seed, "faces", "split"),
    )
    if not items:
        raise FileNotFoundError(f"faces.input {input_root} holds no files")
    # the input folder's path is not an output knob: the items' paths and checksums are keyed
    fp = fingerprint_of({k: v for k, v in p.outputs().items() if k != "input"}, seed)
    counts = write_dataset(
        out_dir,
        spec,
        items,
        process_photo,
        code_module=__name__,
        item_keys=[(it.source, it.sha1, it.identity, it.split) for it in items],
        params_fingerprint=fp,
        items_per_shard=sp.items_per_shard(),
        workers=p.workers if workers is None else workers,
        initializer=init_worker,
        initargs=(asdict(p),),
        desc="faces",
        progress=progress,
    )
    rejects = pq.read_table(Path(out_dir) / "rejects.parquet").to_pylist()
    index = pq.read_table(
        Path(out_dir) / "index.parquet", columns=["identity", "split"]
    ).to_pylist()
    per_split = {s: len({r["identity"] for r in index if r["split"] == s}) for s in SPLITS}
    return {
        "inputs": len(items),
        "faces": counts["samples"],
        "rejects": counts["rejects"],
        "rejects_by_reason": dict(
            sorted(collections.Counter(r["reason"] for r in rejects).items())
        ),
        "identities": per_split,
        "faces_per_split": {s: sum(r["split"] == s for r in index) for s in SPLITS},
        "shards": counts["shards"],
    }
