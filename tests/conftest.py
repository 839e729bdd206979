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
