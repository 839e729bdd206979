"""The baseline recipe: its residual variant starts from the aligned bicubic image, and the
identity fine-tuning phase trains on the identity term."""

import pytest
import torch
from torch.nn import functional as F

from models.archs.baseline import BaselineConfig, BaselineSR
from models.train.loop import TrainParams, train
from models.train.recipes import BaselineParams, BaselineWeights, baseline_recipe
from tests.models.train.test_loop import ToyPairs


def test_the_residual_baseline_starts_as_bicubic_and_trains_away_from_it():
    torch.manual_seed(0)
    net = BaselineSR(BaselineConfig(width=16, blocks=1, residual=True), lr_size=16)
    lr = torch.rand(2, 3, 16, 16) * 2 - 1
    bicubic = F.interpolate(lr, scale_factor=8, mode="bicubic").clamp(-1, 1)
    out = net(lr)
    # the STN starts at the identity and the residual at zero: exactly bicubic (resampled)
    assert out.shape == (2, 3, 128, 128)
    assert (out - bicubic).abs().max() < 1e-4
    out.mean().backward()
    assert net.tail.weight.grad.abs().sum() > 0  # the residual branch learns


def test_identity_steps_make_a_second_phase_with_the_identity_term(tmp_path):
    p = BaselineParams(
        arch=BaselineConfig(width=16, blocks=1),
        weights=BaselineWeights(identity=1.0),
        train=TrainParams(steps=3, batch=2, device="cpu", log_every=1),
        identity_steps=1,
    )
    recipe = baseline_recipe(p, lr_size=4, task="toy")
    assert [(ph.name, ph.steps) for ph in recipe.phases] == [("train", 2), ("identity", 1)]
    summary, _ = train(recipe, ToyPairs(), tmp_path, p.train, seed=0, progress=False)
    assert summary["final_losses"]["phase"] == "identity"
    assert summary["final_losses"]["g/identity"] > 0
    assert "g/identity" not in summary["first_losses"]


def test_identity_steps_are_checked():
    with pytest.raises(ValueError, match="identity_steps"):
        BaselineParams.from_params({"train": {"steps": 10}, "identity_steps": 11})
    with pytest.raises(ValueError, match="weights.identity"):
        BaselineParams.from_params({"identity_steps": 5, "weights": {"identity": 0.0}})
