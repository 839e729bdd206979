"""One training loop for every network: named phases, several optimisers, the papers' learning
rate schedules, gradient clipping, EMA, checkpoints with resume, dvclive curves, sample grids,
mixed precision and ``torch.compile`` on CUDA, and several GPUs through PyTorch DDP (launch with
``torchrun``; one process per GPU, or several CPU processes on gloo).

A network brings a ``Recipe``: its modules and, per phase, which parameters each optimiser
trains (at which learning rate) and a step function that, given a batch, yields
``(optimiser, loss terms, weights)`` in the order the optimisers step (a GAN yields its
discriminator's terms, then its generator's).

Determinism: the samples of global step ``s`` are drawn from a generator seeded by
``(seed, s)``, augmentation is keyed by (item, epoch), and torch's global generators are
reseeded from ``(seed, s, rank)`` before the step (``step_seed``), so a run killed and resumed
from a checkpoint takes the same batches and draws the same noise as one that never stopped,
and ends with the same weights.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from datagen.core.params import ParamGroup, run_knob
from models.train.checkpoints import CheckpointError
from models.train.device import check_device_name, pick_device
from models.train.live import LossLogger
from models.train.optim import weighted_sum
from models.train.state import load_training_state, read_state, save_training_state

STATE_FILE = "train_state.safetensors"

StepFn = Callable[[dict[str, Any], dict[str, nn.Module]], Iterator[tuple[str, dict, dict]]]


@dataclass(frozen=True)
class TrainParams(ParamGroup):
    """How a network trains (each network's ``<net>.train`` params)."""

    GROUP = "train"
    steps: int = 400  # optimiser steps over all phases (a recipe splits them)
    batch: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    lr_decay: float = 1.0  # learning rate multiplied by this after every epoch (CPGAN: 0.99)
    grad_clip: float = 0.0  # clip each optimiser's gradient norm to this (0: off)
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off)
    amp: bool = True  # bf16 autocast on CUDA (never on the CPU); it changes the weights
    checkpoint_every: int = run_knob(100)  # steps between training checkpoints (resume points)
    sample_every: int = run_knob(200)  # steps between sample grids
    log_every: int = run_knob(10)
    device: str = run_knob("auto")
    workers: int = run_knob(0)  # DataLoader worker processes
    compile: bool = run_knob(False)  # torch.compile the modules (CUDA)

    def validate(self) -> None:
        counts = (self.steps, self.batch, self.checkpoint_every, self.sample_every, self.log_every)
        if min(counts) < 1:
            raise ValueError(
                "train.steps, batch, checkpoint_every, sample_every and log_every must be >= 1"
            )
        if self.lr <= 0 or not 0 < self.lr_decay <= 1 or self.grad_clip < 0:
            raise ValueError("train.lr must be > 0, lr_decay in (0, 1], grad_clip >= 0")
        if not 0 <= self.ema < 1:
            raise ValueError("train.ema must be in [0, 1)")
        check_device_name(self.device, "train.device")


@dataclass
class Phase:
    """A named stretch of training: ``steps`` steps, optimisers given as lists of param groups
    (``{"params": ..., "lr_scale": ...}``), and the step function."""

    name: str
    steps: int
    optimisers: dict[str, list[dict[str, Any]]]
    step: StepFn


@dataclass
class Recipe:
    """A network's training: its modules (by name, e.g. ``g``, ``d``), its phases, and the
    module whose (EMA) weights are the result."""

    modules: dict[str, nn.Module]
    phases: list[Phase]
    output: str = "g"
    config: dict[str, Any] = field(default_factory=dict)
    # DDP's find_unused_parameters: True for a recipe where some step leaves a trained module's
    # parameters out of a backward pass (a sub-network frozen in one phase, say)
    find_unused_parameters: bool = False


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group ``torchrun`` set up (``WORLD_SIZE`` > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


class Keyed(torch.utils.data.Dataset):
    """A dataset read by ``(index, epoch)`` keys, so that augmentation keyed by epoch stays
    deterministic in DataLoader worker processes (``set_epoch`` on the dataset, if it has it)."""

    def __init__(self, ds: torch.utils.data.Dataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        i, epoch = key
        if hasattr(self.ds, "set_epoch"):
            self.ds.set_epoch(epoch)
        return self.ds[i]


def step_keys(seed: int, step: int, batch: int, n: int, dist: Distributed) -> list[tuple[int, int]]:
    """This process's samples of global step ``step``: ``batch`` indices drawn with replacement
    from a generator seeded by (seed, step), split across the processes."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(n, (batch,), generator=g).tolist()
    epoch = step * batch // n
    return [(i, epoch) for i in idx[dist.rank :: dist.world]]


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of torch's global generators during global step ``step`` in process ``rank``:
    noise a recipe draws in its step (``torch.randn``, dropout) is then a function of (seed,
    step, rank) alone, so a resumed run draws what an uninterrupted one would have."""
    return (seed * 1_000_003 + step) * 1009 + rank + 1


def mean_over_processes(values: dict[str, float], dist: Distributed) -> dict[str, float]:
    """Each logged loss averaged over the DDP processes (each saw a slice of the batch)."""
    if dist.world == 1 or not values:
        return values
    import torch.distributed as td

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    if td.get_backend() == "nccl":
        t = t.cuda()
    td.all_reduce(t)
    return dict(zip(keys, (t / dist.world).tolist(), strict=True))


def phase_at(phases: list[Phase], step: int) -> tuple[int, int]:
    """(phase index, first global step of that phase) for global step ``step``."""
    start = 0
    for k, p in enumerate(phases):
        if step < start + p.steps:
            return k, start
        start += p.steps
    return len(phases) - 1, start - phases[-1].steps


def make_optimisers(phase: Phase, p: TrainParams) -> dict[str, torch.optim.Optimizer]:
    out = {}
    for name, groups in phase.optimisers.items():
        gs = [{**g, "base_lr": p.lr * g.get("lr_scale", 1.0)} for g in groups]
        for g in gs:
            g["lr"] = g["base_lr"]
        out[name] = torch.optim.Adam(gs, lr=p.lr, betas=p.betas, eps=p.eps)
    return out


class EMA:
    """Exponential moving average of a module's floating-point weights and buffers."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)


class StepLogger(LossLogger):
    """``LossLogger`` whose points carry their phase and sit at their training step on the x
    axis (dvclive's ``step``), so that a history can be replayed into fresh curves."""

    def tags(self) -> dict[str, Any]:
        return {"phase": self.prefix}

    def send(self, point: dict[str, Any]) -> None:
        if self.live is None:
            return
        self.live.step = point["step"]
        for k, v in point.items():
            if k not in ("step", "phase"):
                self.live.log_metric(f"{point['phase']}/{k}", v)
        self.live.make_summary()


def train(
    recipe: Recipe,
    data: torch.utils.data.Dataset,
    out_dir: str | Path,
    p: TrainParams,
    seed: int,
    live_dir: str | Path | None = None,
    sample_fn: Callable[[nn.Module, int], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[dict[str, Any], nn.Module]:
    """Run (or resume) ``recipe`` on ``data``; the training state goes to ``out_dir``. Returns a
    summary and the trained output module (its EMA weights when EMA is on). ``sample_fn(module, step)`` writes a sample grid; ``stop_after`` ends the run
    after that many global steps as if killed (for tests; a checkpoint is written there)."""
    device = pick_device(p.device)
    dist = init_distributed(device)
    if dist.world > 1 and device.type == "cuda":  # one GPU per process, as torchrun numbers them
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if p.batch % dist.world:
        raise ValueError(f"train.batch {p.batch} does not split evenly over {dist.world} processes")
    out = Path(out_dir)
    state_path = out / STATE_FILE
    total = sum(ph.steps for ph in recipe.phases)
    config = {**recipe.config, "train": p.outputs(), "seed": seed, "steps": total}
    config = json.loads(json.dumps(config, sort_keys=True))  # as a checkpoint gives it back
    torch.manual_seed(seed)
    for m in recipe.modules.values():
        m.to(device).train()

    step = 0
    ema = EMA(recipe.modules[recipe.output], p.ema) if p.ema else None
    resumed_opt: dict[str, torch.optim.Optimizer] | None = None
    saved: dict[str, Any] | None = None
    if state_path.is_file():
        try:
            saved = read_state(state_path)
        except CheckpointError:
            saved = None  # an unreadable or older-format state: start over
    if saved is not None and saved["config"] == config:
        # the step says which phase's optimisers the saved state belongs to; a state saved at
        # a phase boundary holds none (the next phase starts with fresh ones)
        if saved["has_optimisers"]:
            resumed_opt = make_optimisers(
                recipe.phases[phase_at(recipe.phases, saved["step"])[0]], p
            )
        step, _, extra = load_training_state(state_path, recipe.modules, resumed_opt)
        if ema is not None:
            ema.shadow = {n: v.to(device) for n, v in extra.items()}
        if dist.main and progress:
            print(f"resuming {out} at step {step} of {total}")
    elif state_path.is_file() and dist.main:
        print(f"{state_path} was written with other params: training from the start")

    wrapped = dict(recipe.modules)
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = {
            k: DDP(
                m,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=recipe.find_unused_parameters,
            )
            for k, m in recipe.modules.items()
            if any(q.requires_grad for q in m.parameters())
        } | {
            k: m
            for k, m in recipe.modules.items()
            if not any(q.requires_grad for q in m.parameters())
        }
    if p.compile and device.type == "cuda":
        wrapped = {k: torch.compile(m) for k, m in wrapped.items()}
    autocast = p.amp and device.type == "cuda"

    keyed = Keyed(data)
    n = len(keyed)

    live = None
    if live_dir is not None and dist.main:
        from dvclive import Live

        # the curves are always rebuilt from the checkpoint's history, so that a resumed run
        # has exactly the points of an uninterrupted one (what was logged after the last
        # checkpoint of a killed run is dropped and logged again)
        live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=False)
    bar = tqdm(total=total, initial=step, desc="train", disable=not progress or not dist.main)
    logger = StepLogger("", p.log_every, live, bar)
    if step > 0:
        log_state = saved["history"]  # the points, and the window being averaged
        logger.history = log_state.get("points", [])
        logger.sums, logger.n = log_state.get("sums", {}), log_state.get("n", 0)
        if live is not None:
            for point in logger.history:
                logger.send(point)
    t0, first = time.perf_counter(), step
    end = total if stop_after is None else min(total, stop_after)

    def batches(start: int) -> Iterator[dict[str, Any]]:
        keys = [step_keys(seed, s, p.batch, n, dist) for s in range(start, end)]
        loader = torch.utils.data.DataLoader(
            keyed,
            batch_sampler=keys,
            num_workers=p.workers,
            persistent_workers=False,
        )
        yield from loader

    opts = resumed_opt
    current_phase = None
    for batch in batches(step):
        k, phase_start = phase_at(recipe.phases, step)
        phase = recipe.phases[k]
        if current_phase != k:
            if opts is None or current_phase is not None:
                opts = make_optimisers(phase, p)
            current_phase = k
        epoch = (step - phase_start) * p.batch // n
        for o in opts.values():
            for g in o.param_groups:
                g["lr"] = g["base_lr"] * p.lr_decay**epoch
        batch = {key: v.to(device) if torch.is_tensor(v) else v for key, v in batch.items()}
        terms_out: dict[str, float] = {}
        torch.manual_seed(step_seed(seed, step, dist.rank))
        with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            for name, terms, weights in phase.step(batch, wrapped):
                opt = opts[name]
                total_loss = weighted_sum(terms, weights)
                opt.zero_grad(set_to_none=True)
                total_loss.backward()
                if p.grad_clip:
                    params = [q for g in opt.param_groups for q in g["params"]]
                    torch.nn.utils.clip_grad_norm_(params, p.grad_clip)
                opt.step()
                terms_out.update({f"{name}/{t}": float(v.detach()) for t, v in terms.items()})
                terms_out[f"{name}/total"] = float(total_loss.detach())
        if ema is not None:
            ema.update(recipe.modules[recipe.output])
        step += 1
        bar.update(1)
        terms_out = mean_over_processes(terms_out, dist)
        terms_out["total"] = sum(v for t, v in terms_out.items() if t.endswith("/total"))
        logger.prefix = phase.name
        logger.add(step - 1, terms_out, step == total)
        boundary = step == end or phase_at(recipe.phases, step)[0] != k
        if dist.main and (step % p.checkpoint_every == 0 or boundary):
            extra = ema.shadow if ema is not None else None
            # at a phase boundary the optimisers belong to the phase that ended
            saved = {} if phase_at(recipe.phases, step)[0] != k else opts
            log_state = {"points": logger.history, "sums": logger.sums, "n": logger.n}
            save_training_state(state_path, recipe.modules, saved, step, config, extra, log_state)
        if dist.main and sample_fn is not None and (step % p.sample_every == 0 or step == total):
            sample_fn(result_module(recipe, ema), step)
    bar.close()
    if live is not None:
        live.end()
    seconds = time.perf_counter() - t0
    history = logger.history
    return {
        "steps": step,
        "phases": {ph.name: ph.steps for ph in recipe.phases},
        "device": str(device),
        "processes": dist.world,
        "batch": p.batch,
        "train_seconds": round(seconds, 2),
        # None when the run was already complete (nothing trained in this process)
        "images_per_second": (
            round((step - first) * p.batch / seconds, 2) if step > first else None
        ),
        "final_losses": _rounded(history[-1] if history else {}),
        "first_losses": _rounded(history[0] if history else {}),
        "resumed_at": first,
    }, result_module(recipe, ema)


def _rounded(point: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in point.items()}


def result_module(recipe: Recipe, ema: EMA | None) -> nn.Module:
    """The trained output module, with the EMA weights when EMA is on (a copy)."""
    m = recipe.modules[recipe.output]
    if ema is None:
        return m
    import copy

    c = copy.deepcopy(m)
    c.load_state_dict(ema.shadow)
    return c
