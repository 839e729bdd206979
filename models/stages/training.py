"""What every network's training stage does around the loop: the test faces of the sample grid,
the resume key, training, and the trained network's file (``train_<network>`` stages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from datagen.core.images import tile_grid, write_png
from datagen.core.pairs import shard_checksums
from models.data.tasks import TaskDataset, to_uint8
from models.train.loop import Recipe, TrainParams, train
from models.train.model_file import save_model

SAMPLES = 4  # test faces in the sample grid


def sample_grid(
    model: nn.Module, items: list[dict[str, Any]], inputs: tuple[str, ...] = ("lr",)
) -> np.ndarray:
    """Rows of LR (nearest-neighbour upscaled) | output | target for test items; ``inputs``:
    the item fields the network takes (CPGAN: lr and guide)."""
    lr = torch.stack([it["lr"] for it in items])
    hr = torch.stack([it["hr"] for it in items])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        args = [torch.stack([it[k] for it in items]).to(device) for k in inputs]
        out = model(*args).cpu()
    model.train(was_training)
    up = torch.nn.functional.interpolate(lr, size=hr.shape[-2:], mode="nearest")
    return tile_grid([list(r) for r in zip(to_uint8(up), to_uint8(out), to_uint8(hr), strict=True)])


def test_items(pairs_dir: Path, task: str) -> list[dict[str, Any]]:
    """The first ``SAMPLES`` test pairs (none when there is no test split)."""
    try:
        test = TaskDataset(pairs_dir, task, "test", None)
    except ValueError:  # no test split (faces.test_fraction 0): no sample grid
        return []
    return [test[i] for i in range(min(SAMPLES, len(test)))]


def train_network(
    network: str,
    task: str,
    recipe: Recipe,
    data: TaskDataset,
    pairs_dir: Path,
    out_dir: Path,
    p: TrainParams,
    seed: int,
    arch: dict[str, Any],
    extra: dict[str, Any],
    live_dir: Path | None = None,
    progress: bool = True,
    inputs: tuple[str, ...] = ("lr",),
) -> dict[str, Any]:
    """Train ``recipe`` on ``data`` (resuming a killed run), write samples of the test faces and
    the trained network (``model.safetensors``) to ``out_dir``. Returns the summary."""
    items = test_items(pairs_dir, task)
    # the pairs' checksums: new pairs (or another LR size) retrain instead of resuming
    recipe.config["data"] = {"shards": shard_checksums(Path(pairs_dir)), "lr_size": data.lr_size}
    out = Path(out_dir)

    def samples(model: nn.Module, step: int) -> None:
        if items:
            write_png(out / "samples.png", sample_grid(model, items, inputs))

    summary, model = train(recipe, data, out, p, seed, live_dir, samples, progress)
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["train_pairs"] = len(data)
    if summary["processes"] > 1 and torch.distributed.get_rank() != 0:
        return summary  # under torchrun, the first process writes the result
    save_model(model, out, network, task, arch, data.lr_size, extra={"seed": seed, **extra})
    return summary
