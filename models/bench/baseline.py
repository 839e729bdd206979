"""Training throughput and inference speed of the baseline network and of CPGAN's generator
(default params), against bicubic x8 (what a user would otherwise pick), side by side in one
process::

    python -m models.bench.baseline [--device auto] [--batch 16] [--steps 20] [--markdown]

Training: images per second of the full optimiser step (forward, MSE, backward, Adam) on
random 16x16 -> 128x128 batches (CPGAN with a random 128 px guide), after warm-up steps; the
recipes' other terms (L_h, L_id) cost more on top. Inference: milliseconds per image at batch
1 and 64 (``models.eval.metrics.speed``: median of repeats, CUDA synchronised). On a GPU the
default params' bf16 autocast is used for training, as the training loop does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from datagen.core.tables import format_table
from models.archs.baseline import BaselineConfig, BaselineSR
from models.archs.cpgan import CPGANConfig, CPGANGenerator
from models.eval.metrics import parameter_count, speed, to_uint8
from models.eval.protocol import bicubic, takes_guide
from models.train.device import pick_device


def _caller(model: torch.nn.Module):
    """``f(lr, guide)``: the guide goes to a network that takes one (CPGAN) and nowhere else."""
    if takes_guide(model):
        return lambda lr, guide: model(lr, guide)
    return lambda lr, guide: model(lr)


def train_throughput(
    model: torch.nn.Module, device: torch.device, batch: int, steps: int, warmup: int = 3
) -> float:
    """Images per second of full training steps (median step time)."""
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(batch, 3, 16, 16, generator=g).to(device) * 2 - 1
    hr = torch.rand(batch, 3, 128, 128, generator=g).to(device) * 2 - 1
    guide = torch.rand(batch, 3, 128, 128, generator=g).to(device) * 2 - 1
    call = _caller(model)
    autocast = device.type == "cuda"
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            loss = torch.nn.functional.mse_loss(call(lr, guide), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.bench.baseline", description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=16, help="training batch (default 16)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(0)
    models = {"baseline": BaselineSR(BaselineConfig()), "cpgan": CPGANGenerator(CPGANConfig())}
    example = torch.rand(1, 3, 16, 16, device=device) * 2 - 1
    guide = torch.rand(1, 3, 128, 128, device=device) * 2 - 1
    bic = speed(lambda x: bicubic(to_uint8(x), 128), example.cpu())["ms_per_image"]
    head = ["method", "params", "ms/image, batch 1", "ms/image, batch 64",
            "vs bicubic (batch 64)", "train images/s"]  # fmt: skip
    body = [["bicubic x8 (Pillow, CPU)", "0", f"{bic['1']:.3f}", f"{bic['64']:.3f}", "1.00x", "-"]]
    ips = []
    for name, model in models.items():
        model.to(device).eval()
        call = _caller(model)
        net = speed(lambda x, c=call: c(x, guide.expand(len(x), -1, -1, -1)), example)
        net = net["ms_per_image"]
        model.train()
        ips.append(train_throughput(model, device, args.batch, args.steps))
        body.append([name, f"{parameter_count(model):,}", f"{net['1']:.3f}", f"{net['64']:.3f}",
                     f"{net['64'] / bic['64']:.1f}x", f"{ips[-1]:.1f}"])  # fmt: skip
    print(f"device: {device} (torch threads {torch.get_num_threads()}); training at batch "
          f"{args.batch}, {args.steps} timed steps")  # fmt: skip
    print(format_table(head, body, args.markdown))
    return 0 if np.isfinite(ips).all() else 1


if __name__ == "__main__":
    sys.exit(main())
