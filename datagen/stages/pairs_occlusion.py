"""Occlusion pairs (Pro-UIGAN): aligned face -> k masked copies -> degrade -> 16x16 LR."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from datagen.core.pairs import PAIR_COLUMNS, FaceImages, FaceRef, face_refs, pair_meta
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
from datagen.face.degrade import DegradeParams, degrade
from datagen.face.masks import (
    FILLS,
    IRREGULAR_STYLES,
    N_BINS,
    MaskFolder,
    fill_hole,
    irregular_mask,
    square_mask,
)

KINDS = ("irregular", "square", "folder")


@dataclass(frozen=True)
class OcclusionParams(ParamGroup):
    """The ``occlusion`` param group (see params.yaml)."""

    GROUP = "occlusion"
    k: int = 4
    mix: dict[str, float] = field(
        default_factory=lambda: {"irregular": 0.5, "square": 0.5, "folder": 0.0}
    )
    irregular_bins: tuple[int, ...] = tuple(range(N_BINS))
    irregular_style: str = "strokes"
    square_min: int = 16
    square_max: int = 64
    mask_folder: str | None = None
    mask_threshold: int = 127
    fill: str = "zeros"
    transform: bool = False
    workers: int = run_knob(0)

    def validate(self) -> None:
        unknown = set(self.mix) - set(KINDS)
        if unknown:
            raise ValueError(f"occlusion.mix has unknown kinds {sorted(unknown)}; use {KINDS}")
        weights = [float(self.mix.get(k, 0.0)) for k in KINDS]
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("occlusion.mix weights must be >= 0 with a positive sum")
        if self.mix.get("folder", 0) > 0 and not self.mask_folder:
            raise ValueError(
                "occlusion.mix gives 'folder' masks a weight but occlusion.mask_folder is not set"
            )
        if self.irregular_style not in IRREGULAR_STYLES:
            raise ValueError(
                f"occlusion.irregular_style must be one of {IRREGULAR_STYLES}, "
                f"not {self.irregular_style!r}"
            )
        if self.fill not in FILLS:
            raise ValueError(f"occlusion.fill must be one of {FILLS}, not {self.fill!r}")
        bins = self.irregular_bins
        if self.k < 1 or not bins or not all(0 <= b < N_BINS for b in bins):
            raise ValueError(
                f"occlusion.k must be >= 1 and occlusion.irregular_bins within 0..{N_BINS - 1}"
            )

    def weights(self) -> np.ndarray:
        w = np.array([float(self.mix.get(k, 0.0)) for k in KINDS])
        return w / w.sum()


def dataset_spec(hr_size: int, lr_size: int, encoding: str) -> DatasetSpec:
    return DatasetSpec(
        images={
            "lr": ImageSpec((lr_size, lr_size, 3)),
            "hr": ImageSpec((hr_size, hr_size, 3)),
            "mask": ImageSpec((hr_size, hr_size)),
        },
        columns={
            **PAIR_COLUMNS,
            "mask_kind": pa.string(),
            "mask_bin": pa.int8(),
            "mask_file": pa.string(),
            "mask_style": pa.string(),
            "hole_ratio": pa.float32(),
            "fill": pa.string(),
        },
        encoding=encoding,
    )


def make_mask(
    rng: np.random.Generator,
    p: OcclusionParams,
    size: int,
    landmarks: np.ndarray,
    folder: MaskFolder | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw the mask kind from ``occlusion.mix``, then the mask itself."""
    kind = KINDS[int(rng.choice(len(KINDS), p=p.weights()))]
    if kind == "irregular":
        b = int(rng.choice(p.irregular_bins))
        mask, meta = irregular_mask(rng, size, b, p.irregular_style)
    elif kind == "square":
        mask, meta = square_mask(rng, size, p.square_min, p.square_max, landmarks)
    else:
        mask, meta = folder.sample(rng, size)
    return mask, {"mask_file": "", "mask_style": "", **meta}


def occlude_pair(
    hr: np.ndarray,
    ref: FaceRef,
    j: int,
    seed: int,
    p: OcclusionParams,
    d: DegradeParams,
    folder: MaskFolder | None,
) -> dict[str, Any]:
    """The j-th occlusion pair of one face: every draw comes from that pair's own seed."""
    pair_id = f"{ref.face_id}-occ{j}"
    s = sample_seed(seed, "pairs_occlusion", pair_id)
    rng = np.random.default_rng(s)
    mask, mmeta = make_mask(rng, p, hr.shape[0], ref.landmarks, folder)
    occluded = fill_hole(hr, mask, p.fill, rng)
    lr, dmeta = degrade(occluded, ref.landmarks, rng, d, transform=p.transform)
    return {
        **pair_meta(ref, pair_id, s, dmeta),
        **mmeta,
        "fill": p.fill,
        "lr": lr,
        "hr": hr,
        "mask": mask,
    }


_worker: dict[str, Any] = {}


def init_worker(faces_dir: str, occ: dict[str, Any], deg: dict[str, Any], seed: int) -> None:
    p = OcclusionParams(**occ)
    _worker.update(
        images=FaceImages(Path(faces_dir)),
        p=p,
        d=DegradeParams(**deg),
        seed=seed,
        folder=MaskFolder(p.mask_folder, p.mask_threshold) if p.weights()[2] > 0 else None,
    )


def process_face(ref: FaceRef) -> ItemResult:
    w = _worker
    hr = w["images"](ref)
    return ItemResult(
        samples=[
            occlude_pair(hr, ref, j, w["seed"], w["p"], w["d"], w["folder"])
            for j in range(w["p"].k)
        ]
    )


def build_pairs_occlusion(
    faces_dir: Path,
    out_dir: Path,
    occlusion_params: dict[str, Any],
    degrade_params: dict[str, Any],
    shards_params: dict[str, Any],
    seed: int,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The occlusion pairs stage: ``k`` pairs per face of ``faces_dir`` -> ``out_dir``;
    ``workers`` (None: ``occlusion.workers``) processes."""
    p = OcclusionParams.from_params(occlusion_params)
    d = DegradeParams.from_params(degrade_params)
    sp = ShardsParams.from_params(shards_params)
    if p.weights()[2] > 0:
        MaskFolder(p.mask_folder, p.mask_threshold)  # fail now, clearly, not in a worker
    refs, keys = face_refs(Path(faces_dir))
    hr_size = image_specs(faces_dir)["hr"].shape[0]
    if max(p.square_max, p.square_min) > hr_size:
        raise ValueError(f"occlusion.square_max {p.square_max} exceeds the face size {hr_size}")
    spec = dataset_spec(hr_size, d.lr_size, sp.encoding)
    counts = write_dataset(
        out_dir,
        spec,
        refs,
        process_face,
        code_module=__name__,
        item_keys=keys,
        params_fingerprint=fingerprint_of(p.outputs(), d.outputs(), seed),
        items_per_shard=sp.items_per_shard(p.k),
        workers=p.workers if workers is None else workers,
        initializer=init_worker,
        initargs=(str(faces_dir), asdict(p), asdict(d), seed),
        desc="pairs_occlusion",
        progress=progress,
    )
    return {"faces": len(refs), "pairs": counts["samples"], "shards": counts["shards"]}
