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
    """``baseline.weights``: MSE, plus optional perceptual (VGG-19 relu3_2, on scaled features)
    and identity (dlib descriptor MSE) terms."""

    GROUP = "baseline.weights"
    mse: float = 1.0
    perceptual: float = 0.0
    identity: float = 20.0  # only in the last ``baseline.identity_steps`` steps

    def validate(self) -> None:
        values = (self.mse, self.perceptual, self.identity)
        if min(values) < 0 or not sum(values) > 0:
            raise ValueError("baseline.weights must be >= 0 with at least one > 0")


@dataclass(frozen=True)
class BaselineParams(ParamGroup):
    """The ``baseline`` param group: architecture, loss weights, training."""

    GROUP = "baseline"
    arch: BaselineConfig = field(default_factory=BaselineConfig)
    weights: BaselineWeights = field(default_factory=BaselineWeights)
    # 360 steps: with the identity phase, the three tasks train and evaluate in ~7 of the
    # default run's minutes (the train/evaluate issue's budget is 8)
    train: TrainParams = field(default_factory=lambda: TrainParams(steps=360))
    # the last this many of train.steps form a second phase, "identity", that adds the identity
    # term (dlib's network is ~3x the baseline's cost per image, so it only fine-tunes)
    identity_steps: int = 60

    def validate(self) -> None:
        if not 0 <= self.identity_steps <= self.train.steps:
            raise ValueError("baseline.identity_steps must be in [0, baseline.train.steps]")
        if self.identity_steps and not self.weights.identity:
            raise ValueError("baseline.identity_steps > 0 needs baseline.weights.identity > 0")


def baseline_recipe(p: BaselineParams, lr_size: int = 16, task: str = "", seed: int = 0) -> Recipe:
    """The baseline network trained with the weighted MSE (+ perceptual) loss, then, for the
    last ``identity_steps``, with the identity term added. The initial weights come from
    ``seed`` alone (not from whatever ran before)."""
    p.validate()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = BaselineSR(p.arch, lr_size)
    weights = asdict(p.weights)
    perceptual = identity = None
    if p.weights.perceptual:
        from models.losses.perceptual import PerceptualLoss

        perceptual = PerceptualLoss("relu3_2")
    if p.identity_steps:
        from models.losses.identity import IdentityLoss

        identity = IdentityLoss()

    def terms(batch: dict[str, Any], m: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = m["g"](batch["lr"])
        t = {"mse": mse_loss(out, batch["hr"])}
        if perceptual is not None:
            t["perceptual"] = perceptual.to(out.device)(out, batch["hr"])
        return out, t

    def step(batch: dict[str, Any], m: dict) -> Any:
        yield "g", terms(batch, m)[1], weights

    def identity_step(batch: dict[str, Any], m: dict) -> Any:
        out, t = terms(batch, m)
        t["identity"] = identity.to(out.device)(out, batch["hr"])
        yield "g", t, weights

    groups = {"g": [{"params": list(g.parameters())}]}
    phases = [Phase("train", p.train.steps - p.identity_steps, groups, step)]
    if p.identity_steps:
        phases.append(Phase("identity", p.identity_steps, groups, identity_step))
    phases = [ph for ph in phases if ph.steps > 0]
    config = {"network": "baseline", "task": task, "arch": p.arch.outputs(), "weights": weights}
    if p.identity_steps:
        config["identity_steps"] = p.identity_steps
    return Recipe({"g": g}, phases, "g", config)
