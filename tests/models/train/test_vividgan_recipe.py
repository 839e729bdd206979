"""VividGAN's recipe: its three phases and their optimisers, a tiny VividGAN overfitting one
batch, the discriminators trained only with L_adv on, the ablations' phases, bad params."""

from dataclasses import replace

import pytest
import torch

from models.archs.vividgan import VividGANConfig
from models.losses.heatmap import gaussian_heatmaps
from models.train.loop import TrainParams, train
from models.train.vividgan import VividGANParams, VividGANWeights, vividgan_recipe
from tests.helpers import smooth_faces

ARCH = VividGANConfig(width=16, encoder_blocks=1, unet_width=4, locator_width=8, fine_width=8,
                      hourglass_width=8)  # fmt: skip
# the dlib network is tested with the losses; the toy faces are not mirror-symmetric
CHEAP = VividGANWeights(identity=0.0, sym=0.0)


class ToyTurned(torch.utils.data.Dataset):
    """Two fixed pose-like pairs: a smooth 128 px frontal stand-in with landmarks near the
    aligned faces' positions, and its 16 px thumbnail, sheared as a turn would."""

    def __init__(self, n: int = 2):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for hr in smooth_faces(n, g):
            turned = torch.roll(hr, 6, dims=2)
            lr = torch.nn.functional.avg_pool2d(turned[None], 8)[0]
            marks = torch.rand(68, 2, generator=g) * 40 + 44
            heat = gaussian_heatmaps(marks[None], 128, 32, 1.25)[0]
            self.items.append({"lr": lr, "hr": hr, "heatmaps": heat})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def params(steps: int, coarse: int, touch: int, **kw) -> VividGANParams:
    base = dict(
        arch=ARCH,
        weights=CHEAP,
        train=TrainParams(steps=steps, batch=2, lr=3e-3, device="cpu", log_every=1),
        coarse_steps=coarse,
        touch_steps=touch,
    )
    return VividGANParams(**{**base, **kw})


def test_three_phases_with_the_papers_learning_rates():
    recipe = vividgan_recipe(params(10, 4, 2))
    assert [(ph.name, ph.steps) for ph in recipe.phases] == [
        ("coarse", 4),
        ("touch", 2),
        ("joint", 4),
    ]
    g = recipe.modules["g"]
    fine, rest = recipe.phases[2].optimisers["g"]
    assert {id(q) for q in fine["params"]} == {id(q) for q in g.fine.parameters()}
    assert rest["lr_scale"] == 0.1  # the paper: 1e-3 fine-integration, 1e-4 the rest
    touch_ids = {id(q) for q in recipe.phases[1].optimisers["g"][0]["params"]}
    assert touch_ids == {id(q) for q in g.touching_up.parameters()}
    assert "d" not in recipe.phases[2].optimisers  # adv 0: no discriminator


def test_a_tiny_vividgan_overfits_one_batch(tmp_path):
    p = params(120, 90, 10)
    summary, model = train(vividgan_recipe(p), ToyTurned(), tmp_path, p.train, 0, progress=False)
    first, last = summary["first_losses"], summary["final_losses"]
    assert last["phase"] == "joint"
    assert last["g/f_mse"] < first["g/mse"] / 8, (first, last)
    for term in ("g/c_mse", "g/c_locator", "g/f_heatmap", "g/touch"):
        assert last[term] > 0, term


def test_with_l_adv_both_discriminators_train(tmp_path):
    p = params(3, 1, 1, weights=replace(CHEAP, adv=0.01))
    recipe = vividgan_recipe(p)
    before = {k: {n: v.clone() for n, v in recipe.modules[k].state_dict().items()}
              for k in ("d_coarse", "d_fine")}  # fmt: skip
    summary, _ = train(recipe, ToyTurned(), tmp_path, p.train, 0, progress=False)
    last = summary["final_losses"]
    for term in ("d/adv_coarse", "d/adv_fine", "g/c_adv", "g/f_adv"):
        assert last[term] > 0, term
    for k, state in before.items():
        after = recipe.modules[k].state_dict()
        assert any(not torch.equal(state[n], after[n]) for n in state), k


def test_ablations_change_the_phases(tmp_path):
    dagger = vividgan_recipe(params(6, 0, 0, arch=replace(ARCH, fine=False)))
    assert [(ph.name, ph.steps) for ph in dagger.phases] == [("coarse", 6)]
    summary, _ = train(dagger, ToyTurned(), tmp_path / "d", dagger_train := params(6, 0, 0).train,
                       0, progress=False)  # fmt: skip
    assert set(summary["final_losses"]) >= {"g/mse", "g/sym"} and dagger_train.steps == 6
    for prior in ("coarse", "ground_truth"):  # V-TN and V+GT: nothing to touch up
        r = vividgan_recipe(params(6, 2, 2, arch=replace(ARCH, prior=prior)))
        assert [ph.name for ph in r.phases] == ["coarse", "joint"]
    s, _ = train(r, ToyTurned(), tmp_path / "gt", r_train := params(6, 2, 2).train, 0,
                 progress=False)  # fmt: skip
    assert "g/touch" not in s["final_losses"] and r_train.batch == 2


def test_coarse_identity_adds_l_id_to_the_coarse_phase(tmp_path):
    """The paper's whole L_C in pre-training (``coarse_identity``), off by default."""
    logged = {}
    for on in (False, True):
        p = params(2, 2, 0, weights=replace(CHEAP, identity=1.0), coarse_identity=on)
        recipe = vividgan_recipe(p)
        assert [ph.name for ph in recipe.phases] == ["coarse"]
        s, _ = train(recipe, ToyTurned(), tmp_path / str(on), p.train, 0, progress=False)
        logged[on] = s["final_losses"]
    assert "g/identity" not in logged[False] and logged[True]["g/identity"] > 0


def test_bad_vividgan_params_are_refused():
    with pytest.raises(ValueError, match="coarse_steps \\+ touch_steps"):
        VividGANParams.from_params(
            {"coarse_steps": 400, "touch_steps": 200, "train": {"steps": 500}}
        )
    with pytest.raises(ValueError, match="adversarial"):
        VividGANParams.from_params({"adversarial": "wgan"})
    with pytest.raises(ValueError, match="mse > 0"):
        VividGANParams.from_params({"weights": {"mse": 0}})
