"""Pro-UIGAN's recipe: its four phases and their optimisers, the local crop at the landmarks, a
tiny Pro-UIGAN overfitting one batch, the landmark estimator learning, the discriminators
trained only with L_adv on, the ablations' phases, the saved model, bad params."""

from dataclasses import replace

import pytest
import torch

from models.archs.prouigan import LandmarkEstimatorConfig, ProUIGAN, ProUIGANConfig
from models.eval.metrics import landmark_nrmse
from models.train.loop import TrainParams, train
from models.train.prouigan import (
    ProUIGANParams,
    ProUIGANWeights,
    arch_of,
    central_boxes,
    central_region,
    prouigan_recipe,
)
from tests.helpers import smooth_faces

ARCH = ProUIGANConfig(widths=(8, 8, 8, 4), encoder_blocks=1, res_blocks=1, hourglass_width=8)
ESTIMATOR = LandmarkEstimatorConfig(width=16, stacks=1, heatmap_size=16)
# VGG and dlib's ResNet are tested with the losses
CHEAP = ProUIGANWeights(perceptual=0.0, style=(0.0, 0.0, 0.0), identity=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the 2-core machine runs other work beside the tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ToyOccluded(torch.utils.data.Dataset):
    """Two fixed occlusion-like pairs: a smooth 128 px face stand-in with landmarks near the
    aligned faces' positions, and its 16 px thumbnail with a grey square hole."""

    def __init__(self, n: int = 2):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for hr in smooth_faces(n, g):
            lr = torch.nn.functional.avg_pool2d(hr[None], 8)[0]
            lr[:, 6:10, 5:9] = 0.0
            marks = torch.rand(68, 2, generator=g) * 40 + 44
            self.items.append({"lr": lr, "hr": hr, "landmarks": marks})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def params(steps: int, est: int, b1: int, b2: int, **kw) -> ProUIGANParams:
    base = dict(
        arch=ARCH,
        estimator=ESTIMATOR,
        weights=CHEAP,
        train=TrainParams(steps=steps, batch=2, lr=3e-3, device="cpu", log_every=1),
        estimator_steps=est,
        block1_steps=b1,
        block2_steps=b2,
    )
    return ProUIGANParams(**{**base, **kw})


def test_four_phases_with_the_papers_learning_rates():
    recipe = prouigan_recipe(params(10, 2, 2, 2))
    assert [(ph.name, ph.steps) for ph in recipe.phases] == [
        ("estimator", 2), ("block1", 2), ("block2", 2), ("joint", 4),
    ]  # fmt: skip
    g = recipe.modules["g"]
    ids = [{id(q) for grp in ph.optimisers["g"] for q in grp["params"]} for ph in recipe.phases]
    assert ids[0] == {id(q) for q in g.estimator.parameters()}
    assert ids[1] == {id(q) for m in (g.net.encoder, g.net.blocks[0]) for q in m.parameters()}
    assert not ids[3] & ids[0]  # the estimator is frozen once trained
    last, rest = recipe.phases[3].optimisers["g"]
    assert {id(q) for q in last["params"]} == {id(q) for q in g.net.blocks[2].parameters()}
    assert rest["lr_scale"] == 0.1  # the paper: 1e-3 for block 3, 1e-4 for blocks 1-2
    assert "d" not in recipe.phases[3].optimisers  # adv 0: no discriminator


def test_the_local_crop_follows_the_landmarks():
    # a face whose central points span x 40..80, y 50..90 at 128 px: a 40 px box (+10%)
    marks = torch.zeros(1, 68, 2)
    marks[0, 17:, 0] = torch.linspace(40, 80, 51)
    marks[0, 17:, 1] = torch.linspace(50, 90, 51)
    box = central_boxes(marks, 128, 128)[0]
    assert torch.allclose(box, torch.tensor([0.0, 38, 48, 82, 92]))
    assert torch.allclose(central_boxes(marks, 128, 32)[0, 1:], box[1:] / 4)
    # the crop of an image whose pixel value is its x coordinate spans the box's columns
    x = torch.arange(128.0).expand(1, 3, 128, 128).contiguous()
    crop = central_region(x, marks, 128, 16)
    assert crop.shape == (1, 3, 16, 16)
    assert 38 < crop[0, 0, 0, 0] < 40 and 80 < crop[0, 0, 0, -1] < 82
    assert torch.allclose(crop[0, 0, 0], crop[0, 0, -1])  # rows alike: x only


def test_a_tiny_prouigan_overfits_one_batch(tmp_path):
    p = params(160, 20, 20, 20)
    recipe = prouigan_recipe(p)
    data = ToyOccluded()
    lr = torch.stack([it["lr"] for it in data.items])
    hr = torch.stack([it["hr"] for it in data.items])
    with torch.no_grad():
        untrained = float(((recipe.modules["g"](lr) - hr) ** 2).mean())
    summary, model = train(recipe, data, tmp_path, p.train, 0, progress=False)
    last = summary["final_losses"]
    assert last["phase"] == "joint" and summary["first_losses"]["phase"] == "estimator"
    assert last["g/b3_mse"] < untrained / 8, (untrained, last)
    with torch.no_grad():
        out = model(lr)
    assert out.shape == (2, 3, 128, 128) and out.abs().max() <= 1
    assert float(((out - hr) ** 2).mean()) < untrained / 8


def test_the_landmark_estimator_learns_and_nrmse_falls(tmp_path):
    data = ToyOccluded()
    lr = torch.stack([it["lr"] for it in data.items])
    marks = torch.stack([it["landmarks"] for it in data.items])

    def nrmse(model: ProUIGAN) -> float:
        maps = model.frozen_heatmaps(lr)  # B x 68 x 16 x 16: peaks -> 128 px coordinates
        flat = maps.flatten(2).argmax(-1)
        xy = torch.stack([flat % 16, flat // 16], -1).double()
        pred = (xy + 0.5) * 128 / 16 - 0.5
        return float(landmark_nrmse(pred.numpy(), marks.double().numpy()).mean())

    # the hourglass itself learns (its template, the mean shape, is tested on its own below)
    p = params(60, 60, 0, 0, estimator=replace(ESTIMATOR, template=False))
    recipe = prouigan_recipe(p)
    before = nrmse(recipe.modules["g"])
    summary, model = train(recipe, data, tmp_path, p.train, 0, progress=False)
    assert [ph.name for ph in recipe.phases] == ["estimator"]
    assert summary["final_losses"]["g/estimator"] < 0.5 * summary["first_losses"]["g/estimator"]
    assert nrmse(model) < 0.8 * before


def test_the_estimators_template_is_the_mean_shape_it_is_given():
    from datagen.face.align import template_pixels
    from models.losses.heatmap import soft_argmax

    marks = torch.stack([it["landmarks"] for it in ToyOccluded(4).items]).mean(0)
    for given, want in ((marks, marks), (None, torch.from_numpy(template_pixels(128)).float())):
        template = prouigan_recipe(params(4, 1, 1, 1), mean_landmarks=given).modules["g"]
        back = soft_argmax(template.estimator.template[None], 128)[0]
        # each peak within half a heatmap pixel (16 px maps: 4 px of the 128 px face) per axis
        assert (back - want).abs().max() <= 4.0 + 1e-3
    plain = params(4, 1, 1, 1, estimator=replace(ESTIMATOR, template=False))
    assert not prouigan_recipe(plain).modules["g"].estimator.template.any()


def test_with_l_adv_the_three_discriminators_train(tmp_path):
    p = params(3, 1, 0, 0, weights=replace(CHEAP, adv=0.01))
    recipe = prouigan_recipe(p)
    names = ("d_local", "d_local3", "d_global")
    before = {k: {n: v.clone() for n, v in recipe.modules[k].state_dict().items()} for k in names}
    summary, _ = train(recipe, ToyOccluded(), tmp_path, p.train, 0, progress=False)
    last = summary["final_losses"]
    for term in ("d/local1", "d/local3", "d/global", "g/b1_adv", "g/b3_adv", "g/b3_gadv"):
        assert last[term] > 0, term
    for k, state in before.items():
        after = recipe.modules[k].state_dict()
        assert any(not torch.equal(state[n], after[n]) for n in state), k


def test_our_identity_term_joins_the_joint_phase(tmp_path):
    p = params(2, 0, 0, 0, weights=replace(CHEAP, identity=1.0))
    recipe = prouigan_recipe(p)
    assert [ph.name for ph in recipe.phases] == ["joint"]
    s, _ = train(recipe, ToyOccluded(), tmp_path, p.train, 0, progress=False)
    assert s["final_losses"]["g/b3_identity"] > 0


def test_ablations_change_the_phases(tmp_path):
    gt = prouigan_recipe(params(6, 2, 2, 2, prior="ground_truth"))  # P+GT: no estimator
    assert [ph.name for ph in gt.phases] == ["block1", "block2", "joint"]
    s, model = train(gt, ToyOccluded(), tmp_path / "gt", params(6, 2, 2, 2).train, 0,
                     progress=False)  # fmt: skip
    assert "g/estimator" not in s["final_losses"]
    with pytest.raises(ValueError, match="P\\+GT oracle"):
        model(ToyOccluded()[0]["lr"][None])
    one = prouigan_recipe(params(4, 2, 2, 2, arch=replace(ARCH, blocks=1)))
    assert [(ph.name, ph.steps) for ph in one.phases] == [("estimator", 2), ("joint", 2)]
    pfp = prouigan_recipe(params(4, 1, 1, 1, arch=replace(ARCH, cmam=False)))
    assert not any(type(m).__name__ == "CMAM" for m in pfp.modules["g"].modules())


def test_the_saved_model_is_rebuilt_by_the_loader(tmp_path):
    from models.train.model_file import save_model
    from models.train.model_loader import load_model

    p = params(4, 1, 1, 1)
    recipe = prouigan_recipe(p)
    g = recipe.modules["g"]
    path = save_model(g, tmp_path / "m", "prouigan", "occlusion", arch_of(p), 16)
    loaded, meta = load_model(path, network="prouigan", task="occlusion")
    lr = ToyOccluded()[0]["lr"][None]
    g.eval()
    assert meta["network"] == "prouigan" and torch.allclose(loaded(lr), g(lr))


def test_bad_prouigan_params_are_refused():
    with pytest.raises(ValueError, match="exceed"):
        ProUIGANParams.from_params({"estimator_steps": 300, "train": {"steps": 200}})
    with pytest.raises(ValueError, match="prior"):
        ProUIGANParams.from_params({"prior": "fan"})
    with pytest.raises(ValueError, match="style must be a list of 3"):
        ProUIGANParams.from_params({"weights": {"style": [1.0, 1.0]}})
    with pytest.raises(ValueError, match="rest_lr_scale"):
        ProUIGANParams.from_params({"rest_lr_scale": 0})
