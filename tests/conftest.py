"""Fixtures shared by the tests (plain helpers are in ``tests.helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import BUNDLED, SHARED, train_tiny_rain


@pytest.fixture
def shared() -> Path:
    """The ../shared data folder; tests that need it skip when it is absent (a user's clone)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED}/data not present")
    return SHARED


@pytest.fixture(scope="session")
def aligned_face():
    """Bundled face 010_03 aligned to a 256 px crop, with its 68 landmarks in the crop."""
    from datagen.core.images import load_rgb
    from datagen.face import align
    from datagen.face.landmarks import DlibLandmarker, FaceDetector

    rgb = load_rgb(BUNDLED / "neutral_front" / "010_03.jpg", 10**8, 32)
    lm = DlibLandmarker()(rgb, FaceDetector().detect(rgb)[0])
    m = align.estimate_alignment(lm, 256)
    return align.warp_crop(rgb, m, 256), align.apply_affine(lm, m)


@pytest.fixture(scope="session")
def bundled_photos() -> list[Path]:
    photos = sorted(BUNDLED.rglob("*.jpg"))
    assert len(photos) == 204, "the bundled London faces are part of the repository"
    return photos


@pytest.fixture(scope="session")
def tiny_rain(tmp_path_factory):
    """A tiny RaIN (64 px, latent 8) trained for a few steps on 12 bundled faces against a
    crude NI pool (the same faces darkened by random left-right ramps, paired with their faces):
    (checkpoint folder, model, pool images)."""
    from datagen import rain

    model, summary, pool = train_tiny_rain()
    assert summary["steps"] == 4 and summary["style_images"] == 12 and summary["paired_term"]
    assert "paired" in summary["final_losses"]
    out = tmp_path_factory.mktemp("rain")
    rain.save(model, out)
    return out, model, pool.images
