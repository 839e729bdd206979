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
def bundled_photos() -> list[Path]:
    photos = sorted(BUNDLED.rglob("*.jpg"))
    assert len(photos) == 204, "the bundled London faces are part of the repository"
    return photos
