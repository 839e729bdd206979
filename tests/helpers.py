"""Helpers shared by the tests: paths, small datasets built from the bundled faces, the tiny
RaIN recipe. Fixtures are in ``conftest.py``."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "datagen" / "bundled" / "london-faces" / "photos"
SHARED = Path(os.environ.get("FACEPAIRS_SHARED", REPO.parent / "shared"))


def small_faces(
    tmp_path_factory, people: tuple[str, ...], test_fraction: float, shards: dict
) -> Path:
    """A faces dataset of the neutral and smiling fronts of a few bundled people."""
    import shutil

    from datagen.stages.faces import build_faces

    photos = tmp_path_factory.mktemp("photos")
    for person in people:
        for view, folder in (("03", "neutral_front"), ("08", "smiling_front")):
            shutil.copy(BUNDLED / folder / f"{person}_{view}.jpg", photos)
    out = tmp_path_factory.mktemp("faces")
    build_faces(
        photos, out, {"test_fraction": test_fraction}, shards, seed=0, workers=1, progress=False
    )
    return out


def bundled_faces(n: int, size: int):
    """The first ``n`` bundled neutral fronts, centre-cropped and resized (not aligned)."""
    import numpy as np

    from datagen.core.images import load_rgb, square_resize

    paths = sorted((BUNDLED / "neutral_front").glob("*.jpg"))[:n]
    return np.stack([square_resize(load_rgb(p, 10**8, 8), size) for p in paths])


TINY_RAIN = {
    "size": 64,
    "latent": 8,
    "hidden": 64,
    "decoder_width": 0.125,
    "luminance_only": True,
    "output": "shading",
    "layout_grid": 0,
    "weights": {"paired": 10.0, "pixel": 10.0, "kl": 0.01},
    "lr": 1e-4,
    "vae_steps": 400,
    "vae_batch": 16,
    "steps": 4,
    "batch": 2,
    "log_every": 2,
    "device": "cpu",
}


def small_fits(tmp_path_factory, faces_dir: Path, shards: dict) -> Path:
    """The fits stage's output for a small faces dataset."""
    from datagen.stages.fits import build_fits

    out = tmp_path_factory.mktemp("fits")
    build_fits(faces_dir, out, {}, shards, workers=1, progress=False)
    return out


def train_tiny_rain():
    """A tiny RaIN (64 px, latent 8) trained for a few steps on 12 bundled faces against a
    crude NI pool (the same faces darkened by random left-right ramps, paired with their faces):
    (model, training summary, pool)."""
    import numpy as np
    import torch

    from datagen import rain
    from datagen.rain import pool as rain_pool
    from datagen.rain import train as rt

    faces = bundled_faces(12, 64)
    rng = np.random.default_rng(0)
    ramps = []
    for f in faces:
        ramp = np.linspace(rng.uniform(0.1, 0.5), rng.uniform(0.6, 1.0), f.shape[1])
        ramp = ramp[::-1] if rng.random() < 0.5 else ramp
        ramps.append((f * ramp[None, :, None]).round().astype(np.uint8))
    pool = rain_pool.StylePool(np.stack(ramps), [], [], content_index=np.arange(len(faces)))
    p = rain.RainParams.from_params(TINY_RAIN)
    model, summary = rt.train(faces, pool, p, 0, torch.device("cpu"), progress=False)
    return model, summary, pool


def smooth_faces(n: int, generator):
    """``n`` smooth 3 x 128 x 128 face stand-ins in [-0.8, 0.8] (the recipe tests' toy
    targets), one per draw of ``generator``."""
    import torch

    y, x = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
    return [
        torch.stack([torch.sin(3 * x + k), torch.cos(2 * y - k), x * y]) * 0.8
        for k in torch.rand(n, generator=generator).tolist()
    ]
