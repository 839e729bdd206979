"""Loading ``params.yaml``: every knob of every stage, grouped by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run stages from the repository root")
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of param groups")
    return params


def group(params: dict[str, Any], name: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """One param group, with a clear error naming any missing key."""
    g = params.get(name)
    if not isinstance(g, dict):
        raise KeyError(f"params.yaml has no '{name}' group")
    missing = [k for k in required if k not in g]
    if missing:
        raise KeyError(f"params.yaml '{name}' group lacks {missing}")
    return g


def check_keys(name: str, g: dict[str, Any], allowed: set[str]) -> None:
    """A misspelt knob is an error, not a silently ignored default."""
    unknown = sorted(set(g) - allowed)
    if unknown:
        raise KeyError(
            f"params.yaml '{name}' group: unknown key(s) {unknown}; known: {sorted(allowed)}"
        )
