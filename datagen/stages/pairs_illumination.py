"""Illumination pairs (CPGAN): each aligned UI face -> ``k`` RaIN relightings (NI-HR) -> degrade
-> 16x16 NI-LR; the target is the UI-HR face and the guide the UI-HR face of another person of
the same split (CPGAN's external guided face)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from datagen import rain
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
    sha256_file,
    write_dataset,
)
from datagen.face.degrade import DegradeParams, degrade
from models.train.device import check_device_name, pick_device


@dataclass(frozen=True)
class IlluminationParams(ParamGroup):
    """The ``illumination`` param group (see params.yaml)."""

    GROUP = "illumination"
    k: int = 10
    checkpoint: str = "artifacts/rain"
    transform: bool = True
    device: str = run_knob("auto")

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("illumination.k must be >= 1")
        check_device_name(self.device, "illumination.device")


def dataset_spec(hr_size: int, lr_size: int, latent: int, encoding: str) -> DatasetSpec:
    return DatasetSpec(
        images={
            "lr": ImageSpec((lr_size, lr_size, 3)),
            "hr": ImageSpec((hr_size, hr_size, 3)),
            "hr_ni": ImageSpec((hr_size, hr_size, 3)),
            "guide": ImageSpec((hr_size, hr_size, 3)),
        },
        columns={
            **PAIR_COLUMNS,
            "sample": pa.int16(),
            "guide_face_id": pa.string(),
            "guide_identity": pa.string(),
            "z": pa.list_(pa.float32(), latent),
            "rain_checkpoint": pa.string(),
        },
        encoding=encoding,
    )


def pair_id_of(face_id: str, j: int) -> str:
    return f"{face_id}-ni{j}"


def guide_candidates(refs: list[FaceRef], ref: FaceRef) -> list[FaceRef]:
    """Faces a guide may come from: same split, another person; another photo of the same
    person only when the split has no one else. Never the face itself."""
    same_split = [r for r in refs if r.split == ref.split and r.face_id != ref.face_id]
    others = [r for r in same_split if r.identity != ref.identity]
    return others or same_split


_worker: dict[str, Any] = {}


def init_worker(
    faces_dir: str,
    checkpoint: str,
    checkpoint_sha: str,
    p: dict[str, Any],
    d: dict[str, Any],
    seed: int,
) -> None:
    params = IlluminationParams(**p)
    model = rain.load(checkpoint, pick_device(params.device))
    refs, _ = face_refs(Path(faces_dir))
    _worker.update(
        images=FaceImages(Path(faces_dir), "hr"),
        refs=refs,
        model=model,
        p=params,
        d=DegradeParams(**d),
        seed=seed,
        checkpoint_sha=checkpoint_sha[:16],
    )


def illumination_pairs(ref: FaceRef) -> ItemResult:
    """``k`` pairs of one face; pair j draws its latent, its transform and its guide, in that
    order, from its own seed."""
    w = _worker
    p: IlluminationParams = w["p"]
    candidates = guide_candidates(w["refs"], ref)
    if not candidates:
        return ItemResult(
            rejects=[
                {
                    "source": ref.face_id,
                    "reason": "no guide",
                    "detail": f"no other face in split {ref.split!r}",
                }
            ]
        )
    hr = w["images"](ref)
    model: rain.RaIN = w["model"]
    rngs, zs = [], []
    for j in range(p.k):
        s = sample_seed(w["seed"], "pairs_illumination", pair_id_of(ref.face_id, j))
        rng = np.random.default_rng(s)
        zs.append(rain.latent_from_rng(rng, model.config.latent))
        rngs.append((s, rng))
    # one decoder batch of all k: a batch's size can change float rounding, so it is fixed by k
    relit = rain.relight_face(model, hr, torch.from_numpy(np.stack(zs)), p.k)
    pairs = []
    for j, ((s, rng), z, ni) in enumerate(zip(rngs, zs, relit, strict=True)):
        lr, dmeta = degrade(ni, ref.landmarks, rng, w["d"], transform=p.transform)
        guide = candidates[int(rng.integers(len(candidates)))]
        pairs.append(
            {
                **pair_meta(ref, pair_id_of(ref.face_id, j), s, dmeta),
                "sample": j,
                "guide_face_id": guide.face_id,
                "guide_identity": guide.identity,
                "z": z,
                "rain_checkpoint": w["checkpoint_sha"],
                "lr": lr,
                "hr": hr,
                "hr_ni": ni,
                "guide": w["images"](guide),
            }
        )
    return ItemResult(samples=pairs)


def build_pairs_illumination(
    faces_dir: Path,
    out_dir: Path,
    params: dict[str, Any],
    degrade_params: dict[str, Any],
    shards_params: dict[str, Any],
    seed: int,
    progress: bool = True,
) -> dict[str, Any]:
    """The illumination pairs stage: ``k`` pairs per face of ``faces_dir`` -> ``out_dir``. Runs
    in one process: torch already uses every core for the decoder."""
    p = IlluminationParams.from_params(params)
    d = DegradeParams.from_params(degrade_params)
    sp = ShardsParams.from_params(shards_params)
    ckpt = rain.checkpoint_file(p.checkpoint)
    ckpt_sha = sha256_file(ckpt)
    latent = rain.checkpoint_metadata(ckpt)["config"]["latent"]
    refs, keys = face_refs(Path(faces_dir))
    # every face's guide is drawn among its split, so the whole face list is part of the key
    faces_key = sorted((*k, r.split) for r, k in zip(refs, keys, strict=True))
    specs = image_specs(faces_dir)
    hr_size = specs["hr"].shape[0]
    spec = dataset_spec(hr_size, d.lr_size, latent, sp.encoding)
    # the checkpoint path does not change the pairs, its bytes do
    fp_params = {**p.outputs(), "checkpoint": ckpt_sha}
    counts = write_dataset(
        out_dir,
        spec,
        refs,
        illumination_pairs,
        code_module=__name__,
        item_keys=keys,
        params_fingerprint=fingerprint_of(fp_params, d.outputs(), seed, faces_key),
        items_per_shard=sp.items_per_shard(p.k),
        workers=1,
        initializer=init_worker,
        initargs=(str(faces_dir), str(ckpt), ckpt_sha, asdict(p), asdict(d), seed),
        desc="pairs_illumination",
        progress=progress,
    )
    return {
        "faces": len(refs),
        "pairs": counts["samples"],
        "rejects": counts["rejects"],
        "shards": counts["shards"],
        "k": p.k,
        "rain_checkpoint": ckpt_sha[:16],
        "device": str(pick_device(p.device)),
    }
