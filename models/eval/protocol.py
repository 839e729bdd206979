"""The evaluation protocol (DESIGN.md), the same for every method: a method's outputs on the test
split of a task's pairs, scored by ``models.eval.metrics`` and written as one JSON per (method,
task) plus a sample grid.

Methods: ``bicubic`` (bicubic x8 of the LR input, Pillow's filter) and the trained networks
(``baseline``; ``cpgan``, ``vividgan``, ``prouigan`` as they land), read from their
``model.safetensors``. Identity: each output's descriptor distance to its target, and rank-1 /
rank-5 identification against the clean test faces of ``data/faces`` (``identity_metrics``'
gallery rule: per probe, one face per test identity, the person's other photo where there is
one). Landmarks: dlib's landmarks found on the output against the target's.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from PIL import Image

from datagen.core.images import tile_grid, write_png
from datagen.core.shards import ShardDataset
from models.archs.identity import identity_network
from models.data.tasks import TaskDataset
from models.eval import metrics
from models.losses.identity import IdentityLoss
from models.train.device import pick_device
from models.train.model_loader import load_model

METHODS = ("bicubic", "baseline", "cpgan", "vividgan", "prouigan")
# the networks made for one task (their training stage writes artifacts/models/<method>/)
TASK_OF = {"cpgan": "illumination", "vividgan": "pose", "prouigan": "occlusion"}
GRID_FACES = 6  # test faces in each sample grid (the same ones for every method)
KEYS = (
    "psnr", "ssim", "psnr_y", "ssim_y", "identity_distance", "rank1", "rank5",
    "landmark_nrmse", "landmark_detection_rate",
)  # fmt: skip
# per task: index column -> breakdown name (the JSON's by_<name>)
BREAKDOWNS = {
    "illumination": {},
    "pose": {"yaw": "yaw"},
    "occlusion": {"mask_kind": "mask_kind", "square_side": "square_side", "mask_bin": "hole_bin"},
}


def bicubic(lr: np.ndarray, size: int) -> np.ndarray:
    """N x h x w x 3 uint8 -> N x size x size x 3 uint8, Pillow's bicubic filter."""
    return np.stack(
        [np.asarray(Image.fromarray(x).resize((size, size), Image.Resampling.BICUBIC)) for x in lr]
    )


def checkpoint_dir(method: str, task: str, models_dir: Path = Path("artifacts/models")) -> Path:
    """Where the training stages write a method's model: ``<models_dir>/<method>`` for a network
    made for one task (CPGAN, VividGAN, Pro-UIGAN), ``<models_dir>/<method>-<task>`` for the
    baseline, which is trained once per task."""
    if method == "bicubic":
        raise ValueError("bicubic has no checkpoint")
    if method in TASK_OF:
        if task != TASK_OF[method]:
            raise ValueError(f"{method} is trained for {TASK_OF[method]}, not {task}")
        return models_dir / method
    return models_dir / f"{method}-{task}"


def takes_guide(model: torch.nn.Module) -> bool:
    """Whether a network's ``forward`` takes a guide face (CPGAN's ``forward(lr, guide)``): the
    protocol feeds each pair's stored guide to such a network, and only the LR input to the
    others (the baseline)."""
    return "guide" in inspect.signature(model.forward).parameters


def needs_target(model: torch.nn.Module) -> bool:
    """Whether a network reads the target face as its second input (an oracle ablation such as
    VividGAN's V+GT, whose prior is the target's own components): the protocol then passes
    each pair's target where a guided network gets its guide."""
    return bool(getattr(model, "needs_target", False))


def run_method(
    model: torch.nn.Module | None,
    lr: torch.Tensor,
    hr_size: int,
    device: torch.device,
    batch: int,
    guide: torch.Tensor | None = None,
) -> tuple[np.ndarray, Any]:
    """Outputs (N x H x W x 3 uint8) of a network (``model``; None: bicubic) on the LR inputs
    (N x 3 x h x w in [-1, 1]), and the callable to time. ``guide``: N x 3 x H x W guide faces
    in [-1, 1] (or 1 x 3 x H x W, one guide for every input), given to a network that
    ``takes_guide`` (or the targets, to one that ``needs_target``) and ignored by the others."""
    if model is None:

        def fn(x: torch.Tensor) -> np.ndarray:
            return bicubic(metrics.to_uint8(x), hr_size)

        return bicubic(metrics.to_uint8(lr), hr_size), fn
    model.to(device)
    if not takes_guide(model) and not needs_target(model):
        call, fn = (lambda x, start: model(x)), model
    else:
        if guide is None:
            wants = (
                "the target faces (an oracle ablation)" if needs_target(model) else "a guide face"
            )
            raise ValueError(f"{type(model).__name__} takes {wants} and none was given")
        if len(guide) not in (1, len(lr)):
            raise ValueError(f"{len(guide)} guide faces for {len(lr)} inputs (give 1 or one each)")

        def guides(n: int, start: int = 0) -> torch.Tensor:
            g = guide[:1].expand(n, -1, -1, -1) if len(guide) == 1 else guide[start : start + n]
            return g.to(device)

        def call(x: torch.Tensor, start: int) -> torch.Tensor:
            return model(x, guides(len(x), start))

        def fn(x: torch.Tensor) -> torch.Tensor:  # timed with the first input's guide repeated
            return model(x, guides(1).expand(len(x), -1, -1, -1))

    with torch.no_grad():
        outs = [
            metrics.to_uint8(call(lr[i : i + batch].to(device), i))
            for i in range(0, len(lr), batch)
        ]
    return np.concatenate(outs), fn


def network_outputs(fn: Any, lr: torch.Tensor, device: torch.device, batch: int) -> np.ndarray:
    """``fn`` (a network's method) on the LR inputs in batches of ``batch``, without gradient,
    concatenated as float64 numpy."""
    with torch.no_grad():
        outs = [fn(lr[i : i + batch].to(device)).cpu() for i in range(0, len(lr), batch)]
    return torch.cat(outs).double().numpy()


def gallery_faces(faces_dir: Path, identities: set[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Every clean test face of ``faces_dir`` (every test identity, whether or not the pair set
    kept it): images (uint8 N x H x W x 3), identities, face ids. Each probe identity in
    ``identities`` must be among them."""
    ds = ShardDataset(faces_dir, filter=pl.col("split") == "test", images=["hr"])
    rows = [ds[i] for i in range(len(ds))]
    missing = sorted(identities - {r["identity"] for r in rows})
    if missing:
        raise ValueError(f"{faces_dir} has no test face of identities {missing[:5]}")
    images = np.stack([r["hr"].permute(1, 2, 0).numpy() for r in rows])
    return images, [r["identity"] for r in rows], [r["face_id"] for r in rows]


def evaluate(
    method: str,
    task: str,
    pairs_dir: str | Path,
    faces_dir: str | Path,
    checkpoint: str | Path | None = None,
    grid: str | Path | None = None,
    device: str = "auto",
    batch: int = 64,
    speed_repeats: int = 3,
) -> dict[str, Any]:
    """Score ``method`` on the test split of ``pairs_dir`` (task ``task``). Returns the JSON
    record: every metric's mean (``KEYS``), ``n``, ``ms_per_image`` (batch 1 and 64),
    ``parameters``, and the task's breakdowns (``by_yaw``; ``by_mask_kind``,
    ``by_square_side``, ``by_hole_bin``); occlusion adds ``hole_mae`` (``metrics.hole_mae``); a
    network with its own landmark estimator adds ``estimator_nrmse``. ``grid``: where to write the
    sample grid (LR, bicubic, a progressive network's intermediate faces, output, target)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    dev = pick_device(device)
    model, info = None, {"parameters": 0}
    if method != "bicubic":  # a wrong checkpoint fails before any pair is read
        if checkpoint is None:
            raise ValueError(f"method {method!r} needs a checkpoint")
        model, _ = load_model(checkpoint, network=method, task=task)
        info = {"parameters": metrics.parameter_count(model), "checkpoint": str(checkpoint)}
    ds = TaskDataset(pairs_dir, task, "test", None)
    items = [ds[i] for i in range(len(ds))]  # the test split, decoded once
    lr = torch.stack([it["lr"] for it in items])
    targets = metrics.to_uint8(torch.stack([it["hr"] for it in items]))
    # the pairs' stored guides (illumination), stacked only for a network that takes one (CPGAN)
    guided = model is not None and takes_guide(model) and "guide" in items[0]
    guide = torch.stack([it["guide"] for it in items]) if guided else None
    if model is not None and needs_target(model):
        guide = torch.stack([it["hr"] for it in items])
    outputs, fn = run_method(model, lr, ds.hr_size, dev, batch, guide)
    index = ds.index
    per_image: dict[str, np.ndarray] = dict(metrics.psnr_ssim(outputs, targets))
    gallery, g_ids, g_faces = gallery_faces(Path(faces_dir), set(index["identity"].to_list()))
    loss = IdentityLoss(identity_network())
    per_image.update(
        metrics.identity_metrics(
            outputs, targets, index["identity"].to_list(), gallery, g_ids, loss,
            source_face_ids=index["face_id"].to_list(), gallery_face_ids=g_faces,
        )
    )  # fmt: skip
    landmarks = np.stack([np.asarray(x, np.float64) for x in index["landmarks"].to_list()])
    per_image.update(metrics.landmark_metrics(outputs, landmarks))
    if model is not None and getattr(model, "estimates_landmarks", False):
        # a network with its own landmark estimator (Pro-UIGAN): its landmarks on the LR input
        # against the clean face's, the same NRMSE (the paper's Table VI scores FAN this way)
        estimated = network_outputs(model.estimated_landmarks, lr, dev, batch)
        per_image["estimator_nrmse"] = metrics.landmark_nrmse(estimated, landmarks)
    if task == "occlusion":  # how each method fills the hole (mask: 1 x H x W, 1 = hole)
        holes = torch.stack([it["mask"][0] for it in items]).numpy()
        per_image["hole_mae"] = metrics.hole_mae(outputs, targets, holes)
    # -1 marks "not this kind" (a square side for an irregular mask, a PConv bin for a square)
    groups = {
        name: [None if v == -1 else v for v in index[col].to_list()]
        for col, name in BREAKDOWNS[task].items()
    }
    summary = metrics.summarise(per_image, groups)
    example = lr[:1].to(dev)
    timing = metrics.speed(fn, example, repeats=speed_repeats)
    record: dict[str, Any] = {"method": method, "task": task, **summary.pop("overall")}
    record.update(
        {
            "ms_per_image": timing["ms_per_image"],
            "speed_device": timing["device"],
            **info,
            **summary,
        }
    )
    if grid is not None:
        picks = list(range(len(items)))[:: max(1, len(items) // GRID_FACES)][:GRID_FACES]
        lr_picks = metrics.to_uint8(lr[picks])
        scale = ds.hr_size // ds.lr_size
        cols = [lr_picks.repeat(scale, 1).repeat(scale, 2), bicubic(lr_picks, ds.hr_size)]
        if model is not None and hasattr(model, "block_outputs"):
            # a progressive network's intermediate faces (Pro-UIGAN's Fig. 9), nearest-upsampled
            with torch.no_grad():
                stages = model.block_outputs(lr[picks].to(dev))[:-1]
            for face in stages:
                k = ds.hr_size // face.shape[-1]
                cols.append(metrics.to_uint8(face).repeat(k, 1).repeat(k, 2))
        if method != "bicubic":
            cols.append(outputs[picks])
        cols.append(targets[picks])
        write_png(Path(grid), tile_grid([list(r) for r in zip(*cols, strict=True)]))
    return record


def write_record(record: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")


def summary_table(eval_dir: str | Path) -> str:
    """``metrics/eval/summary.md``: methods x tasks, from every ``<method>-<task>.json``."""
    eval_dir = Path(eval_dir)
    names = {f"{m}-{t}.json" for m in METHODS for t in ("illumination", "pose", "occlusion")}
    files = sorted(p for p in eval_dir.glob("*.json") if p.name in names)
    records = [json.loads(p.read_text()) for p in files]
    if not records:
        raise FileNotFoundError(f"no evaluation records (<method>-<task>.json) in {eval_dir}")
    from datagen.core.tables import format_table

    order = {m: i for i, m in enumerate(METHODS)}
    tasks = [
        t for t in ("illumination", "pose", "occlusion") if any(r["task"] == t for r in records)
    ]
    out = ["# Evaluation: test split, every method x task (`dvc repro evaluate`)", ""]
    for task in tasks:
        rows = sorted((r for r in records if r["task"] == task), key=lambda r: order[r["method"]])
        holes = task == "occlusion"  # the table adds how each method fills the hole
        body = []
        for r in rows:

            def f(k: str, d: int = 3, r: dict = r) -> str:
                v = r.get(k)
                return "-" if v is None else f"{v:.{d}f}"

            hole = [f("hole_mae")] if holes else []
            body.append(
                [r["method"], f("psnr", 2), f("ssim"), f("psnr_y", 2), f("ssim_y"),
                 f("identity_distance"), f("rank1"), f("rank5"), f("landmark_nrmse"),
                 f("landmark_detection_rate", 2), *hole, str(r["n"]),
                 f"{r['ms_per_image']['1']:.2f}", str(r["parameters"])]
            )  # fmt: skip
        head = ["method", "PSNR", "SSIM", "PSNR-Y", "SSIM-Y", "id dist", "rank-1", "rank-5",
                "lm NRMSE", "lm det", *(["hole MAE"] if holes else []), "n",
                "ms/img (b1)", "params"]  # fmt: skip
        out += [f"## {task}", "", format_table(head, body, markdown=True), ""]
    return "\n".join(out)
