"""Prior editing (Pro-UIGAN paper s IV-F): hallucinate an occluded LR face with a landmark set
the user moved, showing that the facial geometry prior steers the output.

The trained model's landmark estimator gives the face's 68 landmarks (soft-argmax of its
heatmaps); an edit scales or shifts a group of them (``GROUPS``: a wider mouth is
``mouth:1.3,1``); both landmark sets are drawn as Gaussian heatmaps the way the recipe draws its
targets, and Pro-UInet hallucinates the face from each. Drawing the unedited set too (rather
than using the estimator's own maps) makes the edit the only difference between the two
outputs. The result is a PNG: LR (nearest) | before | after | |after - before| x 4, and a
record of how much the output changed inside the edited group's box and elsewhere.

``python -m models.eval edit --checkpoint artifacts/models/prouigan --pairs data/pairs/occlusion
--index 0 --scale mouth:1.3,1 --out edit.png``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from datagen.core.images import tile_grid, write_png
from models.eval import metrics
from models.losses.heatmap import gaussian_heatmaps, soft_argmax

# iBUG-68 groups a user can move
GROUPS = {
    "jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
    "right_eye": range(36, 42), "left_eye": range(42, 48), "eyes": range(36, 48),
    "mouth": range(48, 68),
}  # fmt: skip


def parse_moves(scale: list[str], shift: list[str]) -> list[tuple[str, str, float, float]]:
    """``GROUP:sx,sy`` (scale about the group's centre) and ``GROUP:dx,dy`` (shift, pixels of
    the 128 px face) -> (kind, group, a, b) edits, in order; clear errors otherwise."""
    out = []
    for kind, specs in (("scale", scale), ("shift", shift)):
        for spec in specs:
            group, _, values = spec.partition(":")
            if group not in GROUPS:
                raise ValueError(f"unknown landmark group {group!r}; choose from {list(GROUPS)}")
            try:
                a, b = (float(v) for v in values.split(","))
            except ValueError:
                raise ValueError(f"--{kind} {spec!r}: expected {group}:X,Y (two numbers)") from None
            if kind == "scale" and (a <= 0 or b <= 0):
                raise ValueError(f"--scale {spec!r}: factors must be > 0")
            out.append((kind, group, a, b))
    if not out:
        raise ValueError("no edit given: pass --scale GROUP:SX,SY or --shift GROUP:DX,DY")
    return out


def move_landmarks(landmarks: np.ndarray, moves: list[tuple[str, str, float, float]]) -> np.ndarray:
    """68 x 2 landmarks with each edit applied to its group (a copy)."""
    out = np.asarray(landmarks, np.float64).copy()
    for kind, group, a, b in moves:
        idx = list(GROUPS[group])
        if kind == "scale":
            centre = out[idx].mean(0)
            out[idx] = centre + (out[idx] - centre) * np.array([a, b])
        else:
            out[idx] += np.array([a, b])
    return out


def edit_box(before: np.ndarray, after: np.ndarray, moves: list, size: int, margin: int = 6):
    """(x0, y0, x1, y1), end exclusive: the box around the edited groups' points, before and
    after the edit, grown by ``margin`` pixels and clipped to the face."""
    idx = sorted({i for _, g, _, _ in moves for i in GROUPS[g]})
    pts = np.concatenate([before[idx], after[idx]])
    lo = np.clip(np.floor(pts.min(0)) - margin, 0, size).astype(int)
    hi = np.clip(np.ceil(pts.max(0)) + margin + 1, 0, size).astype(int)
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def edit_face(
    model: torch.nn.Module,
    lr: torch.Tensor,
    moves: list[tuple[str, str, float, float]],
    sigma: float = 1.0,
) -> dict[str, Any]:
    """Hallucinate ``lr`` (3 x s x s in [-1, 1]) from its estimated landmarks and from the
    edited ones (a ``ProUIGAN``; ``sigma``: the heatmaps' Gaussian in LR pixels, the recipe's
    ``heatmap_sigma``). Returns the two outputs (uint8 H x W x 3), both landmark sets (68 x 2,
    HR pixels), the edited box and the mean absolute change (in [0, 1]) inside and outside it."""
    if not hasattr(model, "frozen_heatmaps"):
        raise ValueError(f"prior editing needs a Pro-UIGAN model, not {type(model).__name__}")
    model.eval()
    s = lr.shape[-1]
    size = 8 * s
    with torch.no_grad():
        maps = model.frozen_heatmaps(lr[None])
        side = maps.shape[-1]
        before = soft_argmax(maps, size)[0].double().numpy()
        after = move_landmarks(before, moves)
        sets = torch.from_numpy(np.stack([before, after])).float()
        drawn = gaussian_heatmaps(sets, size, side, sigma * side / s)
        faces = model(lr[None].expand(2, -1, -1, -1), drawn, part="blocks")["output"]
    out = metrics.to_uint8(faces)
    change = np.abs(out[1].astype(np.float64) - out[0]).mean(-1) / 255.0
    x0, y0, x1, y1 = edit_box(before, after, moves, size)
    inside = np.zeros(change.shape, bool)
    inside[y0:y1, x0:x1] = True
    return {
        "before": out[0], "after": out[1], "landmarks_before": before, "landmarks_after": after,
        "box": (x0, y0, x1, y1), "change_inside": float(change[inside].mean()),
        "change_outside": float(change[~inside].mean()) if (~inside).any() else 0.0,
        "change": change,
    }  # fmt: skip


def write_edit(path: str | Path, lr: torch.Tensor, result: dict[str, Any]) -> None:
    """LR (nearest) | before | after | |after - before| x 4 (grey), one row."""
    small = metrics.to_uint8(lr[None])[0]
    size = result["before"].shape[0]
    k = size // small.shape[0]
    diff = np.clip(result["change"] * 4 * 255, 0, 255).astype(np.uint8)[..., None].repeat(3, -1)
    row = [small.repeat(k, 0).repeat(k, 1), result["before"], result["after"], diff]
    write_png(Path(path), tile_grid([row]))
