"""Illumination pairs (CPGAN): each aligned UI face -> ``k`` relightings (NI-HR) by RaIN, by the
physical relighting of its fitted shape (``datagen.face3d.relight``) or a mix of the two ->
degrade -> 16x16 NI-LR; the target is the UI-HR face and the guide the UI-HR face of another
person of the same split (CPGAN's external guided face)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from datagen import rain
from datagen.core.pairs import (
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
    sha256_file,
    write_dataset,
)
from datagen.face.degrade import DegradeParams, degrade
from datagen.face3d import morphable
from datagen.face3d.relight import (
    LIGHT_FIELDS,
    RelightParams,
    face_geometry,
    random_light,
    relight_with,
)
from models.train.device import check_device_name, pick_device


@dataclass(frozen=True)
class IlluminationParams(ParamGroup):
    """The ``illumination`` param group (see params.yaml)."""

    GROUP = "illumination"
    k: int = 10
    source: str = "rain"  # rain | physical (relight group) | mix
    mix: float = 0.5  # source mix: the share of physical pairs
    checkpoint: str = "artifacts/rain"
    transform: bool = True
    device: str = run_knob("auto")

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("illumination.k must be >= 1")
        if self.source not in SOURCES:
            raise ValueError(
                f"illumination.source must be one of {list(SOURCES)}, got {self.source!r}"
            )
        if not 0 <= self.mix <= 1:
            raise ValueError(f"illumination.mix must be a share in [0, 1], got {self.mix}")
        check_device_name(self.device, "illumination.device")

    @property
    def uses_rain(self) -> bool:
        return self.source == "rain" or (self.source == "mix" and self.mix < 1)

    @property
    def uses_fits(self) -> bool:
        return self.source == "physical" or (self.source == "mix" and self.mix > 0)


SOURCES = ("rain", "physical", "mix")


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
            "source": pa.string(),
            "z": pa.list_(pa.float32(), latent),
            "rain_checkpoint": pa.string(),
            "light": pa.struct([(k, pa.float64()) for k in (*LIGHT_FIELDS, "shadow_fraction")]),
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
    fits_dir: str | None,
    checkpoint: str,
    checkpoint_sha: str,
    p: dict[str, Any],
    relight_p: dict[str, Any],
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
        fits=morphable.load_fits(Path(fits_dir)) if fits_dir else {},
        p=params,
        relight=RelightParams(**relight_p),
        d=DegradeParams(**d),
        seed=seed,
        checkpoint_sha=checkpoint_sha[:16],
    )


def illumination_pairs(item: tuple[FaceRef, dict[str, str] | None]) -> ItemResult:
    """``k`` pairs of one face; pair j draws, in this order and from its own seed, its source
    (a uniform number, used by ``mix``), its latent, its light, its transform and its guide:
    all of them whatever the source, so a pair's draws do not depend on the source."""
    ref, no_fit = item
    if no_fit is not None:
        return ItemResult(rejects=[{"source": ref.face_id, **no_fit}])
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
    draws = []
    for j in range(p.k):
        s = sample_seed(w["seed"], "pairs_illumination", pair_id_of(ref.face_id, j))
        rng = np.random.default_rng(s)
        u = rng.uniform()
        physical = p.source == "physical" or (p.source == "mix" and u < p.mix)
        z = rain.latent_from_rng(rng, model.config.latent)
        draws.append((s, rng, physical, z, random_light(rng, w["relight"])))
    relit: list[np.ndarray | None] = [None] * p.k
    if any(not physical for _, _, physical, _, _ in draws):
        # one decoder batch of all k: a batch's size can change float rounding, so it is fixed
        # by k whatever the mix
        relit = rain.relight_face(model, hr, torch.from_numpy(np.stack([x[3] for x in draws])), p.k)
    lights: list[dict[str, float] | None] = [None] * p.k
    if any(physical for _, _, physical, _, _ in draws):
        fit = morphable.fit_from_record(w["fits"][ref.face_id])
        geometry = face_geometry(fit, hr.shape[0])
        for j, (_, _, physical, _, light) in enumerate(draws):
            if physical:
                relit[j], lights[j] = relight_with(hr, fit, light, w["relight"].shadows, geometry)
    pairs = []
    for j, ((s, rng, physical, z, _), ni, light) in enumerate(
        zip(draws, relit, lights, strict=True)
    ):
        lr, dmeta = degrade(ni, ref.landmarks, rng, w["d"], transform=p.transform)
        guide = candidates[int(rng.integers(len(candidates)))]
        pairs.append(
            {
                **pair_meta(ref, pair_id_of(ref.face_id, j), s, dmeta),
                "sample": j,
                "guide_face_id": guide.face_id,
                "guide_identity": guide.identity,
                "source": "physical" if physical else "rain",
                "z": None if physical else z,
                "rain_checkpoint": None if physical else w["checkpoint_sha"],
                "light": light,
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
    relight_params: dict[str, Any] | None = None,
    fits_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The illumination pairs stage: ``k`` pairs per face of ``faces_dir`` -> ``out_dir``
    (``relight_params`` and ``fits_dir``: the physical source's light and shapes). Runs in one
    process: torch already uses every core for the decoder."""
    p = IlluminationParams.from_params(params)
    rp = RelightParams.from_params(relight_params or {})
    d = DegradeParams.from_params(degrade_params)
    sp = ShardsParams.from_params(shards_params)
    ckpt = rain.checkpoint_file(p.checkpoint)
    ckpt_sha = sha256_file(ckpt)
    latent = rain.checkpoint_metadata(ckpt)["config"]["latent"]
    refs, keys = face_refs(Path(faces_dir))
    items = [(r, None) for r in refs]
    item_keys = list(keys)
    if p.uses_fits:
        if fits_dir is None:
            raise FileNotFoundError(
                f"illumination.source {p.source!r} relights faces by their fitted shape: "
                "no fits folder given (run the fits stage first)"
            )
        try:
            items, item_keys, _ = fitted_items(refs, keys, Path(fits_dir))
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"illumination.source {p.source!r} relights faces by their fitted shape: {e}"
            ) from e
    # every face's guide is drawn among its split, so the whole face list is part of the key
    faces_key = sorted((*k, r.split) for r, k in zip(refs, keys, strict=True))
    specs = image_specs(faces_dir)
    hr_size = specs["hr"].shape[0]
    spec = dataset_spec(hr_size, d.lr_size, latent, sp.encoding)
    # the checkpoint path does not change the pairs, its bytes do (when RaIN makes any)
    fp_params = {
        **p.outputs(),
        "checkpoint": ckpt_sha if p.uses_rain else None,
        "relight": rp.outputs() if p.uses_fits else None,
    }
    counts = write_dataset(
        out_dir,
        spec,
        items,
        illumination_pairs,
        code_module=__name__,
        item_keys=item_keys,
        params_fingerprint=fingerprint_of(fp_params, d.outputs(), seed, faces_key),
        items_per_shard=sp.items_per_shard(p.k),
        workers=1,
        initializer=init_worker,
        initargs=(
            str(faces_dir),
            str(fits_dir) if p.uses_fits else None,
            str(ckpt),
            ckpt_sha,
            asdict(p),
            asdict(rp),
            asdict(d),
            seed,
        ),
        desc="pairs_illumination",
        progress=progress,
    )
    return {
        "faces": len(refs),
        "pairs": counts["samples"],
        "rejects": counts["rejects"],
        "shards": counts["shards"],
        "k": p.k,
        "source": p.source,
        "mix": p.mix if p.source == "mix" else None,
        "rain_checkpoint": ckpt_sha[:16] if p.uses_rain else None,
        "device": str(pick_device(p.device)),
    }
