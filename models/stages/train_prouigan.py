"""Stage ``train_prouigan``: ``data/pairs/occlusion`` -> ``artifacts/models/prouigan/``
(``model.safetensors``: the landmark estimator and Pro-UInet, the training state for resuming,
``samples.png``) and the loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.tasks import TaskDataset
from models.stages.training import train_network
from models.train.prouigan import ProUIGANParams, arch_of, prouigan_recipe


def build_train_prouigan(
    pairs_dir: Path,
    out_dir: Path,
    params: dict[str, Any],
    seed: int,
    live_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train Pro-UIGAN on the train split of the occlusion pairs (resuming a killed run); write
    the trained model and a sample grid of test faces to ``out_dir``. Returns a summary."""
    p = ProUIGANParams.from_params(params)
    # the recipe draws every block's target heatmaps from the landmarks itself
    data = TaskDataset(
        pairs_dir, "occlusion", "train", None, flip=True, seed=seed, cache_row_groups=10**6
    )
    # the estimator's template: the train faces' mean landmarks (pixels of the HR face)
    marks = np.asarray(data.index["landmarks"].to_list(), np.float32)
    mean = torch.from_numpy(marks.reshape(len(marks), 68, 2).mean(0))
    recipe = prouigan_recipe(p, data.lr_size, seed, mean)
    extra = {k: v for k, v in recipe.config.items() if k not in ("network", "task", "arch")}
    extra["train"] = p.train.outputs()
    return train_network(
        "prouigan", "occlusion", recipe, data, pairs_dir, out_dir, p.train, seed, arch_of(p),
        extra, live_dir, progress,
    )  # fmt: skip
