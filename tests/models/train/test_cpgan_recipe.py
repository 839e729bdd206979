"""CPGAN's recipe: a tiny CPGAN overfits one batch, the joint phase trains D and G on every
term of the paper's L_G (and G alone when L_adv is off), and bad params are refused."""

import pytest
import torch

from models.archs.cpgan import CPGANConfig
from models.losses.heatmap import gaussian_heatmaps
from models.train.cpgan import CPGANParams, CPGANWeights, cpgan_recipe
from models.train.loop import TrainParams, train
from tests.helpers import smooth_faces

ARCH = CPGANConfig(width=16, internal_blocks=1, external_blocks=1, hourglass_width=16)
PAPER = CPGANWeights(mse=1.0, identity=1e-3, heatmap=1e-2, ic=1.0, adv=1e-2)  # supplement s2


class ToyShaded(torch.utils.data.Dataset):
    """Two fixed illumination-like pairs: a smooth 128 px face stand-in, its shaded 16 px
    thumbnail, a guide and landmark heatmaps."""

    def __init__(self, n: int = 2):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for hr in smooth_faces(n, g):
            x = torch.linspace(-1, 1, 128).expand(128, 128)  # image x, -1 at the left
            shade = (x + 1.2) / 2.2  # light from the right
            lr = torch.nn.functional.avg_pool2d((hr * shade)[None], 8)[0]
            marks = torch.rand(68, 2, generator=g) * 100 + 14
            heat = gaussian_heatmaps(marks[None], 128, 64, 2.5)[0]
            guide = torch.rand(3, 128, 128, generator=g) * 2 - 1
            self.items.append({"lr": lr, "hr": hr, "guide": guide, "heatmaps": heat})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def test_a_tiny_cpgan_overfits_one_batch(tmp_path):
    p = CPGANParams(
        arch=ARCH,
        weights=CPGANWeights(identity=0.0, ic=0.0),
        train=TrainParams(steps=60, batch=2, lr=3e-3, device="cpu", log_every=5),
        pretrain_steps=60,
    )
    summary, _ = train(cpgan_recipe(p), ToyShaded(), tmp_path, p.train, 0, progress=False)
    first, last = summary["first_losses"]["g/mse"], summary["final_losses"]["g/mse"]
    assert last < first / 10, (first, last)


def test_the_joint_phase_trains_d_and_g_on_every_term(tmp_path):
    p = CPGANParams(
        arch=ARCH,
        weights=PAPER,
        train=TrainParams(steps=3, batch=2, device="cpu", log_every=1),
        pretrain_steps=1,
        ic_size=32,
    )
    recipe = cpgan_recipe(p)
    assert [ph.name for ph in recipe.phases] == ["pretrain", "joint"]
    before = {k: v.clone() for k, v in recipe.modules["d"].state_dict().items()}
    summary, _ = train(recipe, ToyShaded(), tmp_path, p.train, 0, progress=False)
    last = summary["final_losses"]
    assert last["phase"] == "joint"
    for term in ("g/mse", "g/heatmap", "g/adv", "g/ic", "g/identity", "d/adv"):
        assert last[term] > 0, term
    after = recipe.modules["d"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # D trained


def test_without_the_adversarial_term_no_discriminator_is_trained(tmp_path):
    # the CPU default (adv 0): the joint phase is the generator alone with L_id added
    p = CPGANParams(
        arch=ARCH,
        weights=CPGANWeights(identity=1.0, ic=0.0, adv=0.0),
        train=TrainParams(steps=3, batch=2, device="cpu", log_every=1),
        pretrain_steps=1,
    )
    recipe = cpgan_recipe(p)
    assert list(recipe.phases[1].optimisers) == ["g"]
    before = {k: v.clone() for k, v in recipe.modules["d"].state_dict().items()}
    summary, _ = train(recipe, ToyShaded(), tmp_path, p.train, 0, progress=False)
    last = summary["final_losses"]
    assert last["phase"] == "joint" and last["g/identity"] > 0
    assert not any(k.startswith("d/") or k in ("g/adv", "g/ic") for k in last), last
    after = recipe.modules["d"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_cpgan_params_are_refused():
    with pytest.raises(ValueError, match="pretrain_steps"):
        CPGANParams.from_params({"pretrain_steps": 500, "train": {"steps": 400}})
    with pytest.raises(ValueError, match="adversarial"):
        CPGANParams.from_params({"adversarial": "wgan"})
    with pytest.raises(ValueError, match="copy_scales"):
        CPGANParams.from_params({"arch": {"copy_scales": [8]}})
