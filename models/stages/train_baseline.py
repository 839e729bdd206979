"""Stage ``train_baseline`` (one per task): ``data/pairs/<task>`` ->
``artifacts/models/baseline-<task>/`` (``model.safetensors``, the training state for resuming,
``samples.png``) and the dvclive loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from datagen.core.images import tile_grid, write_png
from datagen.core.pairs import shard_checksums
from models.data.tasks import TaskDataset, denormalize_image
from models.train.loop import train
from models.train.model_file import save_model
from models.train.recipes import BaselineParams, baseline_recipe

SAMPLES = 4  # test faces in the sample grid


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """B x 3 x H x W in [-1, 1] -> B x H x W x 3 uint8."""
    return denormalize_image(x.cpu()).permute(0, 2, 3, 1).numpy()


def sample_grid(model: nn.Module, items: list[dict[str, Any]]) -> np.ndarray:
    """Rows of LR (nearest-neighbour upscaled) | output | target for test items."""
    lr = torch.stack([it["lr"] for it in items])
    hr = torch.stack([it["hr"] for it in items])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(lr.to(device)).cpu()
    model.train(was_training)
    up = torch.nn.functional.interpolate(lr, size=hr.shape[-2:], mode="nearest")
    return tile_grid([list(r) for r in zip(to_uint8(up), to_uint8(out), to_uint8(hr), strict=True)])


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
    try:
        test = TaskDataset(pairs_dir, task, "test", None)
        items = [test[i] for i in range(min(SAMPLES, len(test)))]
    except ValueError:  # no test split (faces.test_fraction 0): no sample grid
        items = []
    lr_size = data.lr_size
    recipe = baseline_recipe(p, lr_size, task, seed)
    # the pairs' checksums: new pairs (or another LR size) retrain instead of resuming
    recipe.config["data"] = {"shards": shard_checksums(Path(pairs_dir)), "lr_size": lr_size}
    out = Path(out_dir)

    def samples(model: nn.Module, step: int) -> None:
        if items:
            write_png(out / "samples.png", sample_grid(model, items))

    summary, model = train(recipe, data, out, p.train, seed, live_dir, samples, progress)
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["train_pairs"] = len(data)
    if summary["processes"] > 1 and torch.distributed.get_rank() != 0:
        return summary  # under torchrun, the first process writes the result
    save_model(
        model, out, "baseline", task, p.arch.outputs(), lr_size,
        extra={"seed": seed, "train": p.train.outputs(), "weights": p.weights.outputs()},
    )  # fmt: skip
    return summary
