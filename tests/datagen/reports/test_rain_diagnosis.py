"""rain_diagnosis: where a RaIN checkpoint loses its pool's light."""

import numpy as np

from datagen.rain import pool as rain_pool
from datagen.reports import rain_diagnosis as rd
from tests.helpers import bundled_faces


def test_diagnosis_of_a_tiny_rain_on_a_two_sided_pool(tiny_rain, capsys):
    _, model, _ = tiny_rain
    faces = bundled_faces(4, 64)
    ramp = np.linspace(1.0, 0.15, 64)[None, None, :, None]
    images = np.concatenate(
        [
            (faces * ramp).round().astype(np.uint8),
            (faces * ramp[:, :, ::-1]).round().astype(np.uint8),
        ]
    )
    pool = rain_pool.StylePool(images, [], [], content_index=np.tile(np.arange(4), 2))
    r = rd.diagnose(model, pool, faces, n=8)
    assert r["pool_images"] == 8 and r["relit_faces"] == 4  # one per style_per_face
    assert 0 <= r["active_dims"] <= r["latent"] == 8
    # the pool's own figures: half lit from each side, strongly
    assert r["lr_sd"]["pool_images"] > 0.15
    assert all(v > 0 for v in r["stats_spread"].values())
    assert -1 <= r["lr_correlation"] <= 1
    assert all(v >= 0 for v in r["direction_spread"].values())
    text = rd.table(r, markdown=True)
    assert "active latent dimensions" in text and "L-R correlation" in text


def test_diagnosis_of_a_checkpoint_loaded_from_disk(tiny_rain):
    """What the command diagnoses: a checkpoint as ``rain.load`` returns it, whose weights
    require grad (the trained model in memory has its VAE frozen)."""
    from datagen import rain

    folder, _, images = tiny_rain
    model = rain.load(folder)
    assert any(q.requires_grad for q in model.vae.parameters())
    faces = bundled_faces(4, 64)
    pool = rain_pool.StylePool(images[:8], [], [], content_index=np.tile(np.arange(4), 2))
    r = rd.diagnose(model, pool, faces, n=4)
    assert r["relit_faces"] == 4 and all(v > 0 for v in r["stats_spread"].values())


def test_ridge_direction_recovers_a_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5, 0.0]) + 3
    w = rd.ridge_direction(x, y, lam=1e-6)
    assert np.allclose(w, [1.0, -2.0, 0.0, 0.5, 0.0], atol=1e-3)
