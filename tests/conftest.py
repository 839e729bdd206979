from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "datagen" / "bundled" / "london-faces" / "photos"
SHARED = Path(os.environ.get("FACEPAIRS_SHARED", REPO.parent / "shared"))


@pytest.fixture
def shared() -> Path:
    """The ../shared data folder; tests that need it skip when it is absent (a user's clone)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED}/data not present")
    return SHARED


@pytest.fixture(scope="session")
def aligned_face():
    """Bundled face 010_03 aligned to a 256 px crop, with its 68 landmarks in the crop."""
    from datagen import align
    from datagen.images import load_rgb
    from datagen.landmarks import DlibLandmarker, FaceDetector

    rgb = load_rgb(BUNDLED / "neutral_front" / "010_03.jpg", 10**8, 32)
    lm = DlibLandmarker()(rgb, FaceDetector().detect(rgb)[0])
    m = align.estimate_alignment(lm, 256)
    return align.warp_crop(rgb, m, 256), align.apply_affine(lm, m)


def small_faces(
    tmp_path_factory, people: tuple[str, ...], test_fraction: float, shards: dict
) -> Path:
    """A faces dataset of the neutral and smiling fronts of a few bundled people."""
    import shutil

    from datagen.faces import build_faces

    photos = tmp_path_factory.mktemp("photos")
    for person in people:
        for view, folder in (("03", "neutral_front"), ("08", "smiling_front")):
            shutil.copy(BUNDLED / folder / f"{person}_{view}.jpg", photos)
    out = tmp_path_factory.mktemp("faces")
    build_faces(
        photos, out, {"test_fraction": test_fraction}, shards, seed=0, workers=1, progress=False
    )
    return out


@pytest.fixture(scope="session")
def bundled_photos() -> list[Path]:
    photos = sorted(BUNDLED.rglob("*.jpg"))
    assert len(photos) == 204, "the bundled London faces are part of the repository"
    return photos


def bundled_faces(n: int, size: int):
    """The first ``n`` bundled neutral fronts, centre-cropped and resized (not aligned)."""
    import numpy as np

    from datagen.images import load_rgb, square_resize

    paths = sorted((BUNDLED / "neutral_front").glob("*.jpg"))[:n]
    return np.stack([square_resize(load_rgb(p, 10**8, 8), size) for p in paths])


TINY_RAIN = {
    "size": 64,
    "latent": 8,
    "hidden": 64,
    "decoder_width": 0.125,
    "luminance_only": True,
    "output": "shading",
    "weights": {"paired": 10.0, "pixel": 10.0},
    "vae_steps": 400,
    "vae_batch": 16,
    "steps": 4,
    "batch": 2,
    "log_every": 2,
    "device": "cpu",
}


@pytest.fixture(scope="session")
def tiny_rain(tmp_path_factory):
    """A tiny RaIN (64 px, latent 8) trained for a few steps on 12 bundled faces against a
    crude NI pool (the same faces darkened by random left-right ramps, paired with their faces):
    (checkpoint folder, model, pool images)."""
    import numpy as np
    import torch

    from datagen import rain
    from datagen import rain_train as rt

    faces = bundled_faces(12, 64)
    rng = np.random.default_rng(0)
    ramps = []
    for f in faces:
        ramp = np.linspace(rng.uniform(0.1, 0.5), rng.uniform(0.6, 1.0), f.shape[1])
        ramp = ramp[::-1] if rng.random() < 0.5 else ramp
        ramps.append((f * ramp[None, :, None]).round().astype(np.uint8))
    pool = rt.StylePool(np.stack(ramps), [], [], content_index=np.arange(len(faces)))
    p = rain.RainParams.from_params(TINY_RAIN)
    model, summary = rt.train(faces, pool, p, 0, torch.device("cpu"), progress=False)
    assert summary["steps"] == 4 and summary["style_images"] == 12 and summary["paired_term"]
    assert "paired" in summary["final_losses"]
    out = tmp_path_factory.mktemp("rain")
    rain.save(model, out)
    return out, model, pool.images


def small_fits(tmp_path_factory, faces_dir: Path, shards: dict) -> Path:
    """The fits stage's output for a small faces dataset."""
    from datagen.fits import build_fits

    out = tmp_path_factory.mktemp("fits")
    build_fits(faces_dir, out, {}, shards, workers=1, progress=False)
    return out
