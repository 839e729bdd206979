"""Stage ``train_baseline`` (one per task): ``data/pairs/<task>`` ->
``artifacts/models/baseline-<task>/`` (``model.safetensors``, the training state for resuming,
``samples.png``) and the dvclive loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.data.tasks import TaskDataset
from models.stages.training import train_network
from models.train.recipes import BaselineParams, baseline_recipe


def build_train_baseline(
    task: str,
    pairs_dir: Path,
    out_dir: Path,
    params: dict[str, Any],
    seed: int,
    live_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the baseline on the train split of ``pairs_dir`` (resuming a killed run); write the
    trained network and a sample grid of test faces to ``out_dir``. Returns a summary."""
    p = BaselineParams.from_params(params)
    # the baseline needs no heatmaps; every row group stays in memory (a few MB of encoded faces)
    data = TaskDataset(pairs_dir, task, "train", None, flip=True, seed=seed, cache_row_groups=10**6)
    recipe = baseline_recipe(p, data.lr_size, task, seed)
    extra = {"train": p.train.outputs(), "weights": p.weights.outputs()}
    return train_network(
        "baseline", task, recipe, data, pairs_dir, out_dir, p.train, seed, p.arch.outputs(),
        extra, live_dir, progress,
    )  # fmt: skip
