"""The training loop: overfitting, checkpoints, resume, DDP."""

import os
import subprocess
import sys

import torch

from models.archs.baseline import BaselineConfig
from models.archs.discriminators import PatchDiscriminator
from models.losses.adversarial import discriminator_loss, generator_loss
from models.losses.pixel import mse_loss
from models.train.loop import Phase, Recipe, TrainParams, train
from models.train.recipes import BaselineParams, baseline_recipe
from models.train.state import load_training_state, save_training_state
from tests.helpers import REPO


class ToyPairs(torch.utils.data.Dataset):
    """Four fixed (4x4 -> 32x32) pairs: the target is a smooth pattern, the input its mean."""

    def __init__(self, n: int = 4):
        g = torch.Generator().manual_seed(0)
        y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
        self.hr = [
            torch.stack([torch.sin(3 * x + k), torch.cos(2 * y - k), x * y]) * 0.8
            for k in torch.rand(n, generator=g).tolist()
        ]
        self.lr = [torch.nn.functional.avg_pool2d(h[None], 8)[0] for h in self.hr]

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        return {"lr": self.lr[i], "hr": self.hr[i], "index": i}


def tiny_recipe(p: TrainParams, seed: int = 0):
    arch = BaselineConfig(width=16, blocks=1, stn=True)
    params = BaselineParams(arch=arch, train=p, identity_steps=0)  # MSE only: the loop's tests
    return baseline_recipe(params, lr_size=4, task="toy", seed=seed)


def toy_gan_recipe(p: TrainParams, seed: int = 0) -> Recipe:
    """A two-phase, two-optimiser recipe shaped like the papers' GANs: the generator alone
    (MSE), then D and G in turn; D's real input gets instance noise drawn in the step, so the
    run depends on the per-step seeding of torch's generators."""
    g = tiny_recipe(p, seed).modules["g"]
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        d = PatchDiscriminator(width=8, layers=2)

    def pretrain(batch, m):
        yield "g", {"mse": mse_loss(m["g"](batch["lr"]), batch["hr"])}, {"mse": 1.0}

    def joint(batch, m):
        fake = m["g"](batch["lr"])
        real = batch["hr"] + 0.1 * torch.randn_like(batch["hr"])
        d_loss = discriminator_loss(m["d"](real), m["d"](fake.detach()))
        yield "d", {"adv": d_loss}, {"adv": 1.0}
        terms = {"mse": mse_loss(fake, batch["hr"]), "adv": generator_loss(m["d"](fake))}
        yield "g", terms, {"mse": 1.0, "adv": 0.01}

    half = p.steps // 2
    phases = [
        Phase("pretrain", half, {"g": [{"params": list(g.parameters())}]}, pretrain),
        Phase(
            "joint",
            p.steps - half,
            {"d": [{"params": list(d.parameters())}], "g": [{"params": list(g.parameters())}]},
            joint,
        ),
    ]
    return Recipe({"g": g, "d": d}, phases, "g", {"network": "toy-gan"})


def weights(recipe, name: str = "g"):
    return {k: v.clone() for k, v in recipe.modules[name].state_dict().items()}


def test_a_tiny_network_overfits_four_pairs(tmp_path):
    p = TrainParams(steps=150, batch=4, lr=3e-3, device="cpu", log_every=10)
    summary, _ = train(tiny_recipe(p), ToyPairs(), tmp_path, p, seed=0, progress=False)
    first, last = summary["first_losses"]["g/mse"], summary["final_losses"]["g/mse"]
    assert last < first / 10, (first, last)
    assert summary["steps"] == 150 and (tmp_path / "train_state.safetensors").is_file()


def test_training_state_round_trips(tmp_path):
    p = TrainParams(steps=3, batch=2, device="cpu")
    recipe = tiny_recipe(p)
    train(recipe, ToyPairs(), tmp_path / "a", p, seed=0, progress=False)
    opt = torch.optim.Adam(recipe.modules["g"].parameters(), 1e-3)
    recipe.modules["g"](torch.zeros(1, 3, 4, 4)).mean().backward()
    opt.step()
    path = save_training_state(tmp_path / "s.safetensors", recipe.modules, {"g": opt}, 7, {"x": 1})
    other = tiny_recipe(p)
    opt2 = torch.optim.Adam(other.modules["g"].parameters(), 1e-3)
    step, config, _ = load_training_state(path, other.modules, {"g": opt2})
    assert step == 7 and config == {"x": 1}
    for k, v in weights(recipe).items():
        assert torch.equal(v, other.modules["g"].state_dict()[k]), k
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    p = TrainParams(steps=12, batch=2, lr=1e-3, device="cpu", checkpoint_every=5, ema=0.9)
    whole = tiny_recipe(p, 3)
    train(
        whole, ToyPairs(), tmp_path / "whole", p, seed=3, live_dir=tmp_path / "lw", progress=False
    )
    # killed after 7 steps: the last checkpoint is at step 5 (a kill loses the steps after it)
    killed = tiny_recipe(p, 3)
    train(
        killed, ToyPairs(), tmp_path / "killed", p, 3, tmp_path / "lk", progress=False, stop_after=7
    )
    state = tmp_path / "killed" / "train_state.safetensors"
    step, _, _ = load_training_state(state, tiny_recipe(p).modules)
    assert step == 7
    resumed = tiny_recipe(p, 3)
    summary, _ = train(
        resumed, ToyPairs(), tmp_path / "killed", p, 3, tmp_path / "lk", progress=False
    )
    assert summary["resumed_at"] == 7 and summary["steps"] == 12
    for k, v in weights(whole).items():
        assert torch.equal(v, resumed.modules["g"].state_dict()[k]), k
    # and the loss curves are those of the uninterrupted run, point for point
    curve = "plots/metrics/train/g/mse.tsv"
    assert (tmp_path / "lk" / curve).read_text() == (tmp_path / "lw" / curve).read_text()
    # other params: the state is not reused
    q = TrainParams(steps=12, batch=2, lr=2e-3, device="cpu")
    again, _ = train(tiny_recipe(q), ToyPairs(), tmp_path / "killed", q, 3, progress=False)
    assert again["resumed_at"] == 0


def test_a_killed_gan_run_resumes_to_the_same_weights_noise_included(tmp_path):
    """Killed in the joint phase, between checkpoints: the resumed run re-draws the instance
    noise of the lost steps exactly, so G and D end as in an uninterrupted run."""
    p = TrainParams(steps=10, batch=2, lr=1e-3, device="cpu", checkpoint_every=3)
    whole = toy_gan_recipe(p, 5)
    train(whole, ToyPairs(), tmp_path / "whole", p, seed=5, progress=False)
    train(toy_gan_recipe(p, 5), ToyPairs(), tmp_path / "k", p, 5, progress=False, stop_after=8)
    resumed = toy_gan_recipe(p, 5)
    summary, _ = train(resumed, ToyPairs(), tmp_path / "k", p, 5, progress=False)
    assert summary["resumed_at"] == 8 and set(summary["final_losses"]) >= {"d/adv", "g/adv"}
    for name in ("g", "d"):
        for k, v in weights(whole, name).items():
            assert torch.equal(v, resumed.modules[name].state_dict()[k]), (name, k)


def _torchrun(tmp_path, recipe: str, port: int) -> tuple[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(port), "-m", "tests.models.train.ddp_worker", str(tmp_path),
           recipe]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return (tmp_path / "rank0.txt").read_text(), (tmp_path / "rank1.txt").read_text()


def test_two_process_ddp_gan_ranks_hold_identical_generators_and_discriminators(tmp_path):
    a, b = _torchrun(tmp_path, "gan", 29532)
    assert a == b and len(a.split()) == 2  # one hash for G, one for D


def test_two_process_ddp_ranks_hold_identical_weights(tmp_path):
    a, b = _torchrun(tmp_path, "baseline", 29531)
    assert a == b
    # and they did train: the weights differ from the initial ones
    init = tiny_recipe(TrainParams(steps=2, batch=4))
    import hashlib

    h = hashlib.sha256()
    for v in init.modules["g"].state_dict().values():
        h.update(v.numpy().tobytes())
    assert h.hexdigest() != a
