"""Trained networks as files: ``model.safetensors`` holds the weights of the network a training
run produced and, in its metadata, which network it is, its architecture and the task it was
trained for, so that ``model_loader.load_model`` rebuilds it (and refuses a file of another network or task
with a message naming it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from models.train.checkpoints import CheckpointError, load_tensors, save_tensors

MODEL_FILE = "model.safetensors"
FORMAT = "facepairs-model-1"


# the networks a model file may hold; ``models.train.model_loader`` rebuilds each (kept apart
# so that a training stage, which only saves, does not depend on every network's code)
NETWORKS = ("baseline", "cpgan", "vividgan", "prouigan")


def model_path(path: str | Path) -> Path:
    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() or not path.suffix else path
    if not file.is_file():
        raise CheckpointError(f"no trained network at {file}")
    return file


def save_model(
    module: nn.Module, path: str | Path, network: str, task: str, arch: dict, lr_size: int,
    extra: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write ``module``'s weights with what ``load_model`` needs to rebuild it."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; known: {list(NETWORKS)}")
    meta = {
        "format": FORMAT,
        "network": network,
        "task": task,
        "arch": json.dumps(arch, sort_keys=True),
        "lr_size": str(lr_size),
    }
    meta.update({k: json.dumps(v, sort_keys=True) for k, v in (extra or {}).items()})
    path = Path(path)
    file = path / MODEL_FILE if path.suffix != ".safetensors" else path
    return save_tensors(module.state_dict(), file, meta)


def read_model_file(
    path: str | Path, network: str | None = None, task: str | None = None
) -> tuple[dict[str, Any], dict[str, str], Path]:
    """The tensors and metadata of the model file at ``path`` (a file or its folder), and the
    file; ``network`` / ``task``, when given, must be what the file holds."""
    file = model_path(path)
    tensors, meta = load_tensors(file)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a facepairs trained network")
    if network is not None and meta["network"] != network:
        raise CheckpointError(f"{file} holds a {meta['network']} network, not {network}")
    if task is not None and meta["task"] != task:
        raise CheckpointError(f"{file} was trained for the {meta['task']} task, not {task}")
    return tensors, meta, file
