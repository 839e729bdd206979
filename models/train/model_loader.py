"""Rebuild a trained network from its model file (``models.train.model_file``): the one place
that knows every network's class, for evaluation and for users' own checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from models.train.checkpoints import CheckpointError
from models.train.model_file import read_model_file


def _baseline(arch: dict[str, Any], lr_size: int) -> nn.Module:
    from models.archs.baseline import BaselineConfig, BaselineSR

    return BaselineSR(BaselineConfig.from_params(arch), lr_size)


def _cpgan(arch: dict[str, Any], lr_size: int) -> nn.Module:
    from models.archs.cpgan import CPGANConfig, CPGANGenerator

    return CPGANGenerator(CPGANConfig.from_params(arch), lr_size)


def _vividgan(arch: dict[str, Any], lr_size: int) -> nn.Module:
    from models.archs.vividgan import VividFHNet, VividGANConfig

    return VividFHNet(VividGANConfig.from_params(arch), lr_size)


def _prouigan(arch: dict[str, Any], lr_size: int) -> nn.Module:
    from models.archs.prouigan import LandmarkEstimatorConfig, ProUIGAN, ProUIGANConfig

    a = dict(arch)
    estimator, prior = a.pop("estimator", {}), a.pop("prior", "estimator")
    return ProUIGAN(
        ProUIGANConfig.from_params(a), LandmarkEstimatorConfig.from_params(estimator), lr_size,
        prior,
    )  # fmt: skip


# network name -> builder(arch params, LR size); the papers' networks add themselves here
BUILDERS: dict[str, Callable[[dict[str, Any], int], nn.Module]] = {
    "baseline": _baseline,
    "cpgan": _cpgan,
    "vividgan": _vividgan,
    "prouigan": _prouigan,
}


def load_model(
    path: str | Path, network: str | None = None, task: str | None = None
) -> tuple[nn.Module, dict[str, str]]:
    """The network stored at ``path`` (a file or its folder), in eval mode, and its metadata;
    ``network`` / ``task``, when given, must be what the file holds."""
    tensors, meta, file = read_model_file(path, network, task)
    builder = BUILDERS.get(meta["network"])
    if builder is None:
        raise CheckpointError(f"{file}: unknown network {meta['network']!r}")
    model = builder(json.loads(meta["arch"]), int(meta["lr_size"]))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{file} does not match its {meta['network']} network: {e}") from e
    return model.eval(), meta
