"""Stage ``fits``: one Surrey Face Model fit per aligned face, cached for every stage that
re-renders or relights faces (pairs_pose, and rain_train's built-in style pool).

Fits use the landmarks of the large crop (``hr_large``, ``faces.large_size`` px), so the fit
error is in those pixels. A row of ``data/fits/index.parquet`` rebuilds its fit with
``datagen.face3d.morphable.fit_from_record``; faces that could not be fitted, or fitted poorly, are in
``rejects.parquet`` with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from datagen.core.pairs import LANDMARKS, FaceRef, face_refs
from datagen.core.params import ParamGroup, run_knob
from datagen.core.shards import (
    DatasetSpec,
    ItemResult,
    ShardsParams,
    fingerprint_of,
    image_specs,
    read_index,
    write_dataset,
)
from datagen.face3d import morphable

REASON_POOR = "poor fit"


@dataclass(frozen=True)
class FitsParams(ParamGroup):
    """The ``fits`` param group (see params.yaml)."""

    GROUP = "fits"
    iterations: int = 5
    max_error_px: float = 8.0
    workers: int = run_knob(0)

    def validate(self) -> None:
        if self.iterations < 1 or not self.max_error_px > 0:
            raise ValueError("fits.iterations must be >= 1 and fits.max_error_px > 0")


def dataset_spec() -> DatasetSpec:
    return DatasetSpec(
        images={},
        columns={
            "face_id": pa.string(),
            "identity": pa.string(),
            "split": pa.string(),
            "fit_error_px": pa.float32(),
            "fit_error_iod": pa.float32(),
            "yaw": pa.float32(),
            "pitch": pa.float32(),
            "roll": pa.float32(),
            "shape_coefficients": pa.list_(pa.float32()),
            "expression_coefficients": pa.list_(pa.float32()),
            "camera": pa.list_(pa.list_(pa.float64(), 4), 3),
            "image_width": pa.int32(),
            "image_height": pa.int32(),
            "fit_landmarks": LANDMARKS,
        },
    )


def fit_face(ref: FaceRef, size: int, p: FitsParams) -> ItemResult:
    """Fit one face; a failed or poor fit becomes a reject with its reason."""
    try:
        f = morphable.fit(ref.landmarks, (size, size), iterations=p.iterations)
    except morphable.FitRejected as e:
        return ItemResult(rejects=[{"source": ref.face_id, "reason": e.reason, "detail": e.detail}])
    if f.error_px > p.max_error_px:
        return ItemResult(
            rejects=[
                {
                    "source": ref.face_id,
                    "reason": REASON_POOR,
                    "detail": f"mean landmark error {f.error_px:.2f} px > fits.max_error_px "
                    f"{p.max_error_px}",
                }
            ]
        )
    return ItemResult(
        samples=[
            {
                "face_id": ref.face_id,
                "identity": ref.identity,
                "split": ref.split,
                "fit_error_iod": f.error_px / morphable.eye_distance(ref.landmarks),
                **morphable.fit_record(f),
            }
        ]
    )


_worker: dict[str, Any] = {}


def init_worker(size: int, params: dict[str, Any]) -> None:
    _worker.update(size=size, p=FitsParams(**params))
    morphable.load_model()


def process_face(ref: FaceRef) -> ItemResult:
    return fit_face(ref, _worker["size"], _worker["p"])


def build_fits(
    faces_dir: Path,
    out_dir: Path,
    fits_params: dict[str, Any],
    shards_params: dict[str, Any],
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The fits stage: every face of ``faces_dir`` -> ``out_dir`` (index + rejects);
    ``workers`` (None: ``fits.workers``) processes."""
    p = FitsParams.from_params(fits_params)
    sp = ShardsParams.from_params(shards_params)
    refs, keys = face_refs(Path(faces_dir), landmarks_column="landmarks_large")
    size = image_specs(faces_dir)["hr_large"].shape[0]
    counts = write_dataset(
        out_dir,
        dataset_spec(),
        refs,
        process_face,
        code_module=__name__,
        item_keys=keys,
        params_fingerprint=fingerprint_of(p.outputs(), size),
        items_per_shard=sp.items_per_shard(),
        workers=p.workers if workers is None else workers,
        initializer=init_worker,
        initargs=(size, asdict(p)),
        desc="fits",
        progress=progress,
    )
    errors = read_index(Path(out_dir))["fit_error_px"]
    return {
        "faces": len(refs),
        "fits": counts["samples"],
        "rejects": counts["rejects"],
        "mean_error_px": round(float(errors.mean()), 3) if len(errors) else None,
        "max_error_px": round(float(errors.max()), 3) if len(errors) else None,
    }
