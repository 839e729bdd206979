"""Each network's training recipe for ``models.train.loop``: its modules, phases, optimisers and
loss terms. The baseline here; CPGAN, VividGAN and Pro-UIGAN add theirs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from datagen.core.params import ParamGroup
from models.archs.baseline import BaselineConfig, BaselineSR
from models.losses.pixel import mse_loss
from models.train.loop import Phase, Recipe, TrainParams


@dataclass(frozen=True)
class BaselineWeights(ParamGroup):
    """``baseline.weights``: MSE, plus an optional perceptual term (VGG-19 relu3_2)."""

    GROUP = "baseline.weights"
    mse: float = 1.0
    perceptual: float = 0.0

    def validate(self) -> None:
        if min(self.mse, self.perceptual) < 0 or not self.mse + self.perceptual > 0:
            raise ValueError("baseline.weights must be >= 0 with at least one > 0")


@dataclass(frozen=True)
class BaselineParams(ParamGroup):
    """The ``baseline`` param group: architecture, loss weights, training."""

    GROUP = "baseline"
    arch: BaselineConfig = field(default_factory=BaselineConfig)
    weights: BaselineWeights = field(default_factory=BaselineWeights)
    train: TrainParams = field(default_factory=TrainParams)


def baseline_recipe(p: BaselineParams, lr_size: int = 16, task: str = "", seed: int = 0) -> Recipe:
    """One phase: the baseline network trained with the weighted MSE (+ perceptual) loss. The
    initial weights come from ``seed`` alone (not from whatever ran before)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = BaselineSR(p.arch, lr_size)
    weights = asdict(p.weights)
    perceptual = None
    if p.weights.perceptual:
        from models.losses.perceptual import PerceptualLoss

        perceptual = PerceptualLoss("relu3_2")

    def step(batch: dict[str, Any], m: dict) -> Any:
        out = m["g"](batch["lr"])
        terms = {"mse": mse_loss(out, batch["hr"])}
        if perceptual is not None:
            terms["perceptual"] = perceptual.to(out.device)(out, batch["hr"])
        yield "g", terms, weights

    phase = Phase("train", p.train.steps, {"g": [{"params": list(g.parameters())}]}, step)
    config = {"network": "baseline", "task": task, "arch": p.arch.outputs(), "weights": weights}
    return Recipe({"g": g}, [phase], "g", config)
