"""Training checkpoints: everything a run needs to resume exactly where it stopped (weights,
optimiser states, EMA weights, the step), as one safetensors file with the run's config in its
metadata. safetensors holds tensors only, so loading one never runs code.

An optimiser's ``state_dict`` is a tree of tensors and plain values: the tensors are stored as
``optim/<name>/<path>`` entries, the plain remainder (param groups, scalar steps) as JSON in the
metadata, and ``unflatten`` puts the tree back together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from models.train.checkpoints import CheckpointError, load_tensors, read_metadata, save_tensors

FORMAT = "facepairs-train-1"


def flatten(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of ``tree`` into ``tensors`` (under ``prefix/...``); returns the tree
    with each tensor replaced by ``{"__tensor__": key}`` (JSON-able)."""
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(tree, dict):
        return {str(k): flatten(v, f"{prefix}/{k}", tensors) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(tree)]
    return tree


def unflatten(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        return {k: unflatten(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unflatten(v, tensors) for v in tree]
    return tree


def _int_keys(state: dict) -> dict:
    """Optimiser states key their per-parameter entries by int; JSON made them strings."""
    out = dict(state)
    out["state"] = {int(k): v for k, v in state.get("state", {}).items()}
    return out


def save_training_state(
    path: str | Path,
    modules: dict[str, torch.nn.Module],
    optimisers: dict[str, torch.optim.Optimizer],
    step: int,
    config: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
    history: dict[str, Any] | None = None,
) -> Path:
    """Write weights (``<module>/<param>``), optimiser states, ``extra_tensors`` (EMA weights,
    say) and ``step`` atomically; ``config`` (JSON-able) identifies the run; ``history`` (the
    logged loss means so far and the window being averaged) lets a resumed run report exactly
    the curve of an uninterrupted one."""
    tensors: dict[str, torch.Tensor] = {}
    for name, m in modules.items():
        for k, v in m.state_dict().items():
            tensors[f"{name}/{k}"] = v.detach().cpu().contiguous()
    trees = {n: flatten(o.state_dict(), f"optim/{n}", tensors) for n, o in optimisers.items()}
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra/{k}"] = v.detach().cpu().contiguous()
    meta = {
        "format": FORMAT,
        "step": str(step),
        "config": json.dumps(config, sort_keys=True),
        "optimisers": json.dumps(trees, sort_keys=True),
        "history": json.dumps(history or {}),
    }
    return save_tensors(tensors, path, meta)


def read_state(path: str | Path) -> dict[str, Any]:
    """What a training checkpoint says about its run, from its metadata alone (no tensors
    read): ``step``, ``config``, ``has_optimisers`` (False for a state written at the end of
    a phase) and ``history`` (the logged points and the window being averaged)."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facepairs training checkpoint")
    log = json.loads(meta.get("history", "{}"))
    return {
        "step": int(meta["step"]),
        "config": json.loads(meta["config"]),
        "has_optimisers": bool(json.loads(meta.get("optimisers", "{}"))),
        "history": log if isinstance(log, dict) else {"points": log},
    }


def load_training_state(
    path: str | Path,
    modules: dict[str, torch.nn.Module],
    optimisers: dict[str, torch.optim.Optimizer] | None = None,
) -> tuple[int, dict[str, Any], dict[str, torch.Tensor]]:
    """Load what ``save_training_state`` wrote into ``modules`` (and ``optimisers``); returns
    the step, the config and the extra tensors. A checkpoint of another network (other module
    names or shapes) is a ``CheckpointError`` naming the file."""
    tensors, meta = load_tensors(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facepairs training checkpoint")
    for name, m in modules.items():
        sub = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{name}/")}
        if not sub:
            raise CheckpointError(f"{path} holds no weights for {name!r}")
        try:
            m.load_state_dict(sub)
        except RuntimeError as e:
            raise CheckpointError(f"{path} does not fit this network ({name}): {e}") from e
    if optimisers:
        trees = json.loads(meta["optimisers"])
        for name, opt in optimisers.items():
            if name not in trees:
                raise CheckpointError(f"{path} has no state for optimiser {name!r}")
            opt.load_state_dict(_int_keys(unflatten(trees[name], tensors)))
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra/")}
    return int(meta["step"]), json.loads(meta["config"]), extra
