"""Two steps of a tiny baseline under DDP: ``torchrun --nproc_per_node 2 -m
tests.models.train.ddp_worker OUT``; each rank writes its weights' SHA-256 to OUT/rank<r>.txt."""

import hashlib
import sys
from pathlib import Path

import torch

from models.train.loop import TrainParams, train
from tests.models.train.test_loop import ToyPairs, tiny_recipe

out = Path(sys.argv[1])
p = TrainParams(steps=2, batch=4, lr=1e-2, device="cpu", checkpoint_every=1000)
recipe = tiny_recipe(p)
train(recipe, ToyPairs(), out / "run", p, seed=0, progress=False)
rank = torch.distributed.get_rank()
h = hashlib.sha256()
for v in recipe.modules["g"].state_dict().values():
    h.update(v.numpy().tobytes())
(out / f"rank{rank}.txt").write_text(h.hexdigest())
torch.distributed.destroy_process_group()
