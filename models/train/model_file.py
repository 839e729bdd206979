"""Trained networks as files: ``model.safetensors`` holds the weights of the network a training
run produced and, in its metadata, which network it is, its architecture and the task it was
trained for, so that ``load_model`` rebuilds it (and refuses a file of another network or task
with a message naming it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from models.train.checkpoints import CheckpointError, load_tensors, save_tensors

MODEL_FILE = "model.safetensors"
FORMAT = "facepairs-model-1"


def _baseline(arch: dict[str, Any], lr_size: int) -> nn.Module:
    from models.archs.baseline import BaselineConfig, BaselineSR

    return BaselineSR(BaselineConfig.from_params(arch), lr_size)


# network name -> builder(arch params, LR size); the papers' networks add themselves here
BUILDERS: dict[str, Callable[[dict[str, Any], int], nn.Module]] = {"baseline": _baseline}


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
    if network not in BUILDERS:
        raise ValueError(f"unknown network {network!r}; known: {sorted(BUILDERS)}")
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


def load_model(
    path: str | Path, network: str | None = None, task: str | None = None
) -> tuple[nn.Module, dict[str, str]]:
    """The network stored at ``path`` (a file or its folder), in eval mode, and its metadata;
    ``network`` / ``task``, when given, must be what the file holds."""
    file = model_path(path)
    tensors, meta = load_tensors(file)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a facepairs trained network")
    if network is not None and meta["network"] != network:
        raise CheckpointError(f"{file} holds a {meta['network']} network, not {network}")
    if task is not None and meta["task"] != task:
        raise CheckpointError(f"{file} was trained for the {meta['task']} task, not {task}")
    builder = BUILDERS.get(meta["network"])
    if builder is None:
        raise CheckpointError(f"{file}: unknown network {meta['network']!r}")
    model = builder(json.loads(meta["arch"]), int(meta["lr_size"]))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{file} does not match its {meta['network']} network: {e}") from e
    return model.eval(), meta
