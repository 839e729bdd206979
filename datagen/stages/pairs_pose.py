"""Pose pairs (VividGAN): aligned frontal face -> re-rendered at each target yaw -> degrade ->
16x16 LR; the target is the frontal HR face."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from datagen.core.pairs import (
    LANDMARKS,
    PAIR_COLUMNS,
    FaceImages,
    FaceRef,
    face_refs,
    fitted_items,
    pair_meta,
)
from datagen.core.params import ParamGroup, run_knob
from datagen.core.seeding import sample_seed
from datagen.core.shards import (
    DatasetSpec,
    ImageSpec,
    ItemResult,
    ShardsParams,
    fingerprint_of,
    image_specs,
    write_dataset,
)
from datagen.face.degrade import DegradeParams, degrade, scale_points
from datagen.face3d import morphable, turning
from datagen.face3d.profiling import HeadShape

DEFAULT_YAWS = (-75.0, -55.0, -40.0, -22.0, 22.0, 40.0, 55.0, 75.0)


@dataclass(frozen=True)
class PoseParams(ParamGroup):
    """The ``pose`` param group (see params.yaml)."""

    GROUP = "pose"
    yaws: tuple[float, ...] = DEFAULT_YAWS
    max_source_yaw: float = 15.0
    method: str = "head"
    head: HeadShape = field(default_factory=HeadShape)
    transform: bool = True
    supersample: int = 1
    texture_size: int = 512
    workers: int = run_knob(0)

    def validate(self) -> None:
        y = self.yaws
        if not y or any(not -90 < v < 90 for v in y) or len(set(y)) != len(y):
            raise ValueError(f"pose.yaws must be distinct angles within (-90, 90), not {y}")
        if self.supersample < 1 or self.texture_size < 64:
            raise ValueError("pose.supersample must be >= 1 and pose.texture_size >= 64")
        if not self.max_source_yaw > 0:
            raise ValueError(f"pose.max_source_yaw must be > 0, not {self.max_source_yaw}")
        if self.method not in turning.METHODS:
            raise ValueError(f"pose.method must be one of {turning.METHODS}, not {self.method!r}")


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
    fit: morphable.Fit,
    seed: int,
    p: PoseParams,
    d: DegradeParams,
) -> list[dict[str, Any]]:
    """One pair per target yaw of one face: every draw comes from that pair's own seed. A face
    whose fitted yaw exceeds ``p.max_source_yaw`` is refused (``morphable.FitRejected``): it is
    no frontal target."""
    hr, large = images["hr"], images["hr_large"]
    size, large_size = hr.shape[0], large.shape[0]
    source_yaw = float(fit.pose.get_yaw_pitch_roll()[0])
    if abs(source_yaw) > p.max_source_yaw:
        raise morphable.FitRejected(
            "source not frontal",
            f"yaw {source_yaw:+.1f} degrees, over pose.max_source_yaw {p.max_source_yaw:g}",
        )
    src = turning.from_fit(large, fit, p.texture_size)
    out = []
    renders = turning.render_yaws(src, list(p.yaws), p.supersample, p.method, head=p.head)
    for r in renders:
        nonfrontal = cv2.resize(r.image, (size, size), interpolation=cv2.INTER_AREA)
        lm = scale_points(r.landmarks, large_size, size)
        pair_id = pair_id_of(ref.face_id, r.yaw)
        s = sample_seed(seed, "pairs_pose", pair_id)
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
        fits=morphable.load_fits(Path(fits_dir)),
        p=PoseParams.from_params(pose_p),
        d=DegradeParams(**deg),
        seed=seed,
    )
    morphable.load_model()


def process_face(item: tuple[FaceRef, dict[str, str] | None]) -> ItemResult:
    ref, no_fit = item
    if no_fit is not None:
        return ItemResult(rejects=[{"source": ref.face_id, **no_fit}])
    w = _worker
    fit = morphable.fit_from_record(w["fits"][ref.face_id])
    try:
        pairs = pose_pairs(w["images"].all(ref), ref, fit, w["seed"], w["p"], w["d"])
    except morphable.FitRejected as e:
        return ItemResult(rejects=[{"source": ref.face_id, "reason": e.reason, "detail": e.detail}])
    return ItemResult(samples=pairs)


def build_pairs_pose(
    faces_dir: Path,
    fits_dir: Path,
    out_dir: Path,
    pose_params: dict[str, Any],
    degrade_params: dict[str, Any],
    shards_params: dict[str, Any],
    seed: int,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The pose pairs stage: one pair per (fitted face, yaw) of ``faces_dir`` -> ``out_dir``;
    ``workers`` (None: ``pose.workers``) processes."""
    p = PoseParams.from_params(pose_params)
    d = DegradeParams.from_params(degrade_params)
    sp = ShardsParams.from_params(shards_params)
    refs, keys = face_refs(Path(faces_dir))
    items, item_keys, fitted = fitted_items(refs, keys, Path(fits_dir))
    specs = image_specs(faces_dir)
    hr_size = specs["hr"].shape[0]
    spec = dataset_spec(hr_size, d.lr_size, sp.encoding)
    counts = write_dataset(
        out_dir,
        spec,
        items,
        process_face,
        code_module=__name__,
        item_keys=item_keys,
        params_fingerprint=fingerprint_of(p.outputs(), d.outputs(), seed),
        items_per_shard=sp.items_per_shard(len(p.yaws)),
        workers=p.workers if workers is None else workers,
        initializer=init_worker,
        initargs=(str(faces_dir), str(fits_dir), asdict(p), asdict(d), seed),
        desc="pairs_pose",
        progress=progress,
    )
    return {
        "faces": len(refs),
        "fitted_faces": fitted,
        "pairs": counts["samples"],
        "rejects": counts["rejects"],
        "shards": counts["shards"],
    }
