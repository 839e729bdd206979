"""Pose pairs (VividGAN): aligned frontal face -> re-rendered at each target yaw -> degrade ->
16x16 LR; the target is the frontal HR face."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from datagen import pose, sfm
from datagen.degrade import DegradeParams, degrade, scale_points
from datagen.fits import load_fits
from datagen.pairs import (
    LANDMARKS,
    PAIR_COLUMNS,
    FaceImages,
    FaceRef,
    face_refs,
    pair_meta,
    shard_checksums,
)
from datagen.params import check_keys
from datagen.seeding import sample_seed
from datagen.shards import (
    DatasetSpec,
    ImageSpec,
    ItemResult,
    fingerprint_of,
    image_specs,
    read_index,
    write_dataset,
)

DEFAULT_YAWS = (-75.0, -55.0, -40.0, -22.0, 22.0, 40.0, 55.0, 75.0)


@dataclass(frozen=True)
class PoseParams:
    """The ``pose`` param group (see params.yaml)."""

    yaws: tuple[float, ...] = field(default_factory=lambda: DEFAULT_YAWS)
    transform: bool = True
    supersample: int = 1
    texture_size: int = 512

    @classmethod
    def from_params(cls, g: dict[str, Any]) -> PoseParams:
        check_keys("pose", g, set(cls.__dataclass_fields__) | {"workers"})
        known = {k: g[k] for k in cls.__dataclass_fields__ if k in g}
        if "yaws" in known:
            known["yaws"] = tuple(float(y) for y in known["yaws"])
        p = cls(**known)
        if not p.yaws or any(not -90 < y < 90 for y in p.yaws) or len(set(p.yaws)) != len(p.yaws):
            raise ValueError(f"pose.yaws must be distinct angles within (-90, 90), not {p.yaws}")
        if p.supersample < 1 or p.texture_size < 64:
            raise ValueError("pose.supersample must be >= 1 and pose.texture_size >= 64")
        return p


def dataset_spec(hr_size: int, lr_size: int, encoding: str) -> DatasetSpec:
    return DatasetSpec(
        images={
            "lr": ImageSpec((lr_size, lr_size, 3)),
            "hr": ImageSpec((hr_size, hr_size, 3)),
            "hr_nonfrontal": ImageSpec((hr_size, hr_size, 3)),
        },
        columns={
            **PAIR_COLUMNS,
            "yaw": pa.float32(),
            "source_yaw": pa.float32(),
            "fit_error_px": pa.float32(),
            "face_coverage": pa.float32(),
            "landmarks_nonfrontal": LANDMARKS,
        },
        encoding=encoding,
    )


def pair_id_of(face_id: str, yaw: float) -> str:
    return f"{face_id}-yaw{yaw:+g}"


def pose_pairs(
    images: dict[str, np.ndarray],
    ref: FaceRef,
    fit: sfm.Fit,
    seed: int,
    p: PoseParams,
    d: DegradeParams,
) -> list[dict[str, Any]]:
    """One pair per target yaw of one face: every draw comes from that pair's own seed."""
    hr, large = images["hr"], images["hr_large"]
    size, large_size = hr.shape[0], large.shape[0]
    src = pose.from_fit(large, fit, p.texture_size)
    source_yaw = float(fit.pose.get_yaw_pitch_roll()[0])
    out = []
    for r in pose.render_yaws(src, list(p.yaws), p.supersample):
        nonfrontal = cv2.resize(r.image, (size, size), interpolation=cv2.INTER_AREA)
        lm = scale_points(r.landmarks, large_size, size)
        pair_id = pair_id_of(ref.face_id, r.yaw)
        s = sample_seed(seed, "pose", pair_id)
        lr, dmeta = degrade(nonfrontal, lm, np.random.default_rng(s), d, transform=p.transform)
        out.append(
            {
                **pair_meta(ref, pair_id, s, dmeta),
                "yaw": r.yaw,
                "source_yaw": source_yaw,
                "fit_error_px": fit.error_px,
                "face_coverage": float(r.face.mean()),
                "landmarks_nonfrontal": lm.astype(np.float32),
                "lr": lr,
                "hr": hr,
                "hr_nonfrontal": nonfrontal,
            }
        )
    return out


_worker: dict[str, Any] = {}


def init_worker(
    faces_dir: str, fits_dir: str, pose_p: dict[str, Any], deg: dict[str, Any], seed: int
) -> None:
    _worker.update(
        images=FaceImages(Path(faces_dir), "hr", extra=("hr_large",)),
        fits=load_fits(Path(fits_dir)),
        p=PoseParams(**pose_p),
        d=DegradeParams(**deg),
        seed=seed,
    )
    sfm.load_model()


def process_face(item: tuple[FaceRef, dict[str, str] | None]) -> ItemResult:
    ref, no_fit = item
    if no_fit is not None:
        return ItemResult(rejects=[{"source": ref.face_id, **no_fit}])
    w = _worker
    fit = sfm.fit_from_record(w["fits"][ref.face_id])
    try:
        pairs = pose_pairs(w["images"].all(ref), ref, fit, w["seed"], w["p"], w["d"])
    except sfm.FitRejected as e:
        return ItemResult(rejects=[{"source": ref.face_id, "reason": e.reason, "detail": e.detail}])
    return ItemResult(samples=pairs)


def fit_rejects(fits_dir: Path) -> dict[str, dict[str, str]]:
    """Faces the fits stage rejected, as this stage's reject records."""
    import polars as pl

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


def build_pose(
    faces_dir: Path,
    fits_dir: Path,
    out_dir: Path,
    pose_params: dict[str, Any],
    degrade_params: dict[str, Any],
    shards_params: dict[str, Any],
    seed: int,
    workers: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The pose pairs stage: one pair per (fitted face, yaw) of ``faces_dir`` -> ``out_dir``."""
    p = PoseParams.from_params(pose_params)
    d = DegradeParams.from_params(degrade_params)
    fits_dir = Path(fits_dir)
    if not (fits_dir / "index.parquet").is_file():
        raise FileNotFoundError(f"{fits_dir}/index.parquet not found: run the fits stage first")
    refs, keys = face_refs(Path(faces_dir))
    fit_shard = dict(read_index(fits_dir).select("face_id", "shard").iter_rows())
    fit_sha = shard_checksums(fits_dir)
    rejected = fit_rejects(fits_dir)
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
    specs = image_specs(faces_dir)
    hr_size = specs["hr"].shape[0]
    spec = dataset_spec(hr_size, d.lr_size, shards_params.get("encoding", "delta-zstd"))
    counts = write_dataset(
        out_dir,
        spec,
        items,
        process_face,
        item_keys=item_keys,
        params_fingerprint=fingerprint_of(asdict(p), asdict(d), seed),
        items_per_shard=max(1, int(shards_params.get("samples_per_shard", 1024)) // len(p.yaws)),
        workers=workers,
        initializer=init_worker,
        initargs=(str(faces_dir), str(fits_dir), asdict(p), asdict(d), seed),
        desc="pose",
        progress=progress,
    )
    return {
        "faces": len(refs),
        "fitted_faces": len(fit_shard),
        "pairs": counts["samples"],
        "rejects": counts["rejects"],
        "shards": counts["shards"],
    }
