"""Per-sample random generators: output bytes never depend on worker count or order."""

from __future__ import annotations

import hashlib

import numpy as np

# Fixed forever, by stage name (as in dvc.yaml): changing an id changes every sample that
# stage draws.
STAGE_IDS = {
    "faces": 1,
    "pairs_occlusion": 2,
    "pairs_pose": 3,
    "pairs_illumination": 4,
    "rain_train": 5,
}


def key_int(key: str) -> int:
    """A stable 64-bit integer for a string key (face_id, pair_id, ...)."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little")


def sample_rng(seed: int, stage: str, key: str | int) -> np.random.Generator:
    """``Generator`` seeded by ``SeedSequence([seed, stage_id, sample_key])``."""
    k = key if isinstance(key, int) else key_int(key)
    return np.random.default_rng(np.random.SeedSequence([seed, STAGE_IDS[stage], k]))


def sample_seed(seed: int, stage: str, key: str) -> int:
    """A pair's 64-bit seed from ``SeedSequence([seed, stage_id, key])``; stored per pair, so
    ``np.random.default_rng(seed)`` replays that pair's draws."""
    state = np.random.SeedSequence([seed, STAGE_IDS[stage], key_int(key)]).generate_state(
        2, np.uint32
    )
    return int(state[0]) | (int(state[1]) << 32)
