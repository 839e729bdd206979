"""Stage ``train_vividgan``: ``data/pairs/pose`` -> ``artifacts/models/vividgan/``
(``model.safetensors``, the training state for resuming, ``samples.png``) and the loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.data.tasks import TaskDataset
from models.stages.training import train_network
from models.train.vividgan import VividGANParams, vividgan_recipe


def build_train_vividgan(
    pairs_dir: Path,
    out_dir: Path,
    params: dict[str, Any],
    seed: int,
    live_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train VividGAN on the train split of the pose pairs (resuming a killed run); write the
    trained generator and a sample grid of test faces to ``out_dir``. Returns a summary."""
    p = VividGANParams.from_params(params)
    data = TaskDataset(
        pairs_dir, "pose", "train", p.arch.heatmap_size, flip=True, seed=seed,
        cache_row_groups=10**6,
    )  # fmt: skip
    recipe = vividgan_recipe(p, data.lr_size, seed)
    extra = {k: v for k, v in recipe.config.items() if k not in ("network", "task", "arch")}
    extra["train"] = p.train.outputs()
    return train_network(
        "vividgan", "pose", recipe, data, pairs_dir, out_dir, p.train, seed,
        p.arch.outputs(), extra, live_dir, progress,
        # the V+GT oracle's sample grid feeds it the targets, as the evaluation does
        inputs=("lr", "hr") if recipe.modules["g"].needs_target else ("lr",),
    )  # fmt: skip
