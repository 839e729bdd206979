"""A few steps of a tiny recipe under DDP: ``torchrun --nproc_per_node 2 -m
tests.models.train.ddp_worker OUT RECIPE`` (RECIPE: baseline, 2 steps, or gan, 4 steps over its
two phases); each rank writes the SHA-256 of each module's weights to OUT/rank<r>.txt."""

import hashlib
import sys
from pathlib import Path

import torch

from models.train.loop import TrainParams, train
from tests.models.train.test_loop import ToyPairs, tiny_recipe, toy_gan_recipe

out, kind = Path(sys.argv[1]), sys.argv[2]
steps = {"baseline": 2, "gan": 4}[kind]
p = TrainParams(steps=steps, batch=4, lr=1e-2, device="cpu", checkpoint_every=1000)
recipe = tiny_recipe(p) if kind == "baseline" else toy_gan_recipe(p)
train(recipe, ToyPairs(), out / "run", p, seed=0, progress=False)
rank = torch.distributed.get_rank()
hashes = []
for name in sorted(recipe.modules):
    h = hashlib.sha256()
    for v in recipe.modules[name].state_dict().values():
        h.update(v.numpy().tobytes())
    hashes.append(h.hexdigest())
(out / f"rank{rank}.txt").write_text(" ".join(hashes))
torch.distributed.destroy_process_group()
