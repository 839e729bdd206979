"""The task datasets the training loop and the evaluation read: one pair set per task
(``data/pairs/<task>``), one split, decoded into the tensors every network takes.

Value range, for the whole project: images are float32 in [-1, 1], ``uint8 / 127.5 - 1``, as
the authors' code feeds its networks (torchvision's ``Normalize(0.5, 0.5)``) and as their Tanh
outputs give back; ``denormalize_image`` is the way back to uint8 (for PSNR/SSIM, grids).

An item of ``TaskDataset(root, task, split)`` is a dict (H x W the shards' HR size, h x w their
LR size, both read from the shards; 128 and 16 by default):

- ``lr``: 3 x h x w, the degraded input; ``hr``: 3 x H x W, the clean target;
- ``guide`` (illumination): 3 x H x W, CPGAN's guide face (another face of the same split);
- ``mask`` (occlusion): 1 x H x W, float, 1 = hole, 0 = kept (the shards' 255 = hole);
- ``landmarks``: 68 x 2 float32, (x, y) of the target's iBUG-68 points in HR pixels,
  pixel-centre convention;
- ``heatmaps``: 68 x S x S float32, ``gaussian_heatmaps`` of ``landmarks`` (S =
  ``heatmap_size``; absent when ``heatmap_size`` is None);
- ``flipped``: whether this item was mirrored (see below);
- metadata as python values: ``pair_id``, ``face_id``, ``identity``, ``split``, and per task
  (``TASK_COLUMNS``) ``guide_face_id``, ``guide_identity`` (illumination); ``yaw`` (pose, the
  input's yaw in degrees, positive = nose to the image's right); ``mask_kind``, ``mask_bin``
  (PConv hole-ratio bin, -1 unless irregular), ``hole_ratio`` and ``square_side`` (occlusion;
  the hole's side in HR pixels for square masks, -1 otherwise: the protocol's per-side
  breakdown; derived from ``hole_ratio`` since the stage stores no side column).

The default ``torch.utils.data.default_collate`` batches these dicts (strings become lists).

Augmentation: ``flip=True`` mirrors an item left-right with probability 1/2. Each decision comes
from a generator seeded by (seed, epoch, index) alone, so it is the same for any DataLoader
worker count or order; ``set_epoch`` moves to another epoch's draws. A flip mirrors every image
of the item, mirrors the landmarks (x -> W - 1 - x) and renumbers them with ``FLIP_68`` (the
subject's right eye corner becomes the left one), and negates the pose task's ``yaw``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from datagen.core.shards import ShardDataset, image_specs
from models.losses.heatmap import gaussian_heatmaps

TASKS = ("illumination", "pose", "occlusion")
VALUE_RANGE = (-1.0, 1.0)  # every image tensor a network sees or gives back


@dataclass(frozen=True)
class TaskColumns:
    """What one task reads from its pair shards."""

    images: tuple[str, ...]  # image columns decoded (all flipped together)
    metadata: tuple[str, ...]  # index columns passed through, beyond COMMON_METADATA


COMMON_METADATA = ("pair_id", "face_id", "identity", "split")
TASK_COLUMNS: dict[str, TaskColumns] = {
    "illumination": TaskColumns(("lr", "hr", "guide"), ("guide_face_id", "guide_identity")),
    "pose": TaskColumns(("lr", "hr"), ("yaw",)),
    "occlusion": TaskColumns(("lr", "hr", "mask"), ("mask_kind", "mask_bin", "hole_ratio")),
}
IMAGE_INPUTS = ("lr", "hr", "guide")  # colour images, scaled to VALUE_RANGE

# VividGAN's code draws its target heatmaps with sigma 5 on 128 px maps (train.py,
# _putGaussianMaps(real_land, 128, 128, 5)); CPGAN's predicts 64 px maps and gives no sigma.
# The default keeps VividGAN's width as a share of the face: 5/128 of the map side, i.e.
# sigma 2.5 heatmap pixels on the default 64 px maps.
SIGMA_FRACTION = 5 / 128

# iBUG-68 mirror permutation: after a left-right flip, point k of the mirrored face is the
# mirror of point FLIP_68[k] of the original (it is an involution: FLIP_68[FLIP_68[k]] == k).
# Points on the midline (chin 8, nose bridge 27-30, nose tip/columella 33, lip centres 51,
# 57, 62, 66) map to themselves.
FLIP_68: tuple[int, ...] = (
    # jaw 0-16, from the image-left ear to the image-right ear: 0 <-> 16, ..., chin 8
    *(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
    # brows 17-21 (image left, outer to inner) <-> 26-22 (image right, outer to inner)
    *(26, 25, 24, 23, 22, 21, 20, 19, 18, 17),
    # nose bridge 27-30 (30 the tip): midline
    *(27, 28, 29, 30),
    # nostril base 31-35: 31 <-> 35, 32 <-> 34, 33 midline
    *(35, 34, 33, 32, 31),
    # image-left eye 36-41 (36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower
    # lid) <-> image-right eye 42-47 (42 inner, 43-44 upper, 45 outer, 46-47 lower):
    # corners 36 <-> 45, 39 <-> 42; lids 37 <-> 44, 38 <-> 43, 40 <-> 47, 41 <-> 46
    *(45, 44, 43, 42, 47, 46),
    *(39, 38, 37, 36, 41, 40),
    # outer lip 48-59, clockwise from the image-left corner: corners 48 <-> 54, 51 and 57
    # midline; 49 <-> 53, 50 <-> 52, 55 <-> 59, 56 <-> 58
    *(54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55),
    # inner lip 60-67: corners 60 <-> 64, 62 and 66 midline; 61 <-> 63, 65 <-> 67
    *(64, 63, 62, 61, 60, 67, 66, 65),
)
_FLIP_INDEX = torch.tensor(FLIP_68)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 image (any shape, e.g. 3 x H x W) -> float32 in [-1, 1]: ``x / 127.5 - 1``."""
    if image.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    return image.to(torch.float32) / 127.5 - 1


def denormalize_image(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (any shape) -> uint8, rounded and clamped: inverts ``normalize_image``
    exactly on its values, and is how a network's output becomes an image."""
    return ((x.to(torch.float32) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """B x 3 x H x W in [-1, 1] -> B x H x W x 3 uint8 RGB: ``(t + 1) * 127.5``, rounded (half
    to even, ``torch.round``), clipped to 0..255."""
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"expected a B x 3 x H x W tensor, got shape {tuple(t.shape)}")
    if not t.is_floating_point():  # a uint8 tensor is not in [-1, 1]: refuse, do not guess
        raise ValueError(f"expected a float tensor in [-1, 1], got {t.dtype}")
    x = denormalize_image(t.detach().cpu())
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


def flip_landmarks(landmarks: torch.Tensor, width: int) -> torch.Tensor:
    """Landmarks of the left-right mirrored image: ... x 68 x 2 -> ... x 68 x 2.

    x -> width - 1 - x (pixel-centre convention: pixel 0's centre becomes pixel width-1's),
    then the points are renumbered with ``FLIP_68`` so that each index keeps its meaning.
    """
    if landmarks.ndim < 2 or landmarks.shape[-2:] != (68, 2):
        raise ValueError(f"expected ... x 68 x 2 landmarks, got {tuple(landmarks.shape)}")
    out = landmarks.index_select(-2, _FLIP_INDEX.to(landmarks.device)).clone()
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def flip_decision(seed: int, epoch: int, index: int) -> bool:
    """Whether item ``index`` is mirrored in ``epoch``: a fair coin from a generator of its own,
    so the answer depends on nothing else (worker count, order, earlier draws)."""
    return bool(np.random.default_rng([seed, epoch, index]).random() < 0.5)


def square_side(mask_kind: str, hole_ratio: float, area: int) -> int:
    """Side in pixels of a square mask from its hole ratio (the square lies wholly inside the
    image, so its area is hole_ratio * area exactly); -1 for any other mask kind."""
    if mask_kind != "square":
        return -1
    return int(round(math.sqrt(hole_ratio * area)))


def _side(root: Path, column: str, shape: tuple[int, ...]) -> int:
    """Side of a square H x W x C image column (heatmaps and flips assume square faces)."""
    if len(shape) != 3 or shape[0] != shape[1]:
        raise ValueError(f"{root}: expected square H x W x C {column!r} images, got {shape}")
    return shape[0]


class TaskDataset(Dataset):
    """One task's pairs, one split, as the networks take them (map-style).

    ``root``: a pair set folder (``data/pairs/<task>``); ``task``: one of ``TASKS``;
    ``split``: ``"train"``, ``"test"`` or None (every row); ``heatmap_size``: side S of the
    68 target heatmaps (None: no heatmaps); ``sigma``: their Gaussian's sigma in heatmap
    pixels (None: ``SIGMA_FRACTION`` * S, 2.5 at S = 64); ``flip``: the random left-right
    mirror (training only, so refused on the test split); ``seed``: the flips' seed;
    ``cache_row_groups``: row groups of encoded images kept in memory (see ShardDataset).
    See the module docstring for the items.

    Flip decisions follow ``set_epoch``. DataLoader workers get a copy of the dataset when an
    epoch's iterator starts, so call ``set_epoch`` before iterating; with
    ``persistent_workers=True`` the workers keep the epoch they started with.
    """

    def __init__(
        self,
        root: str | Path,
        task: str,
        split: str | None = "train",
        heatmap_size: int | None = 64,
        sigma: float | None = None,
        flip: bool = False,
        seed: int = 0,
        cache_row_groups: int = 4,
    ):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
        self.root = Path(root)
        index_path = self.root / "index.parquet"
        if not index_path.is_file():
            raise FileNotFoundError(
                f"{self.root} is not a facepairs shard dataset: it has no index.parquet "
                f"(build it with the pairs_{task} stage)"
            )
        cols = TASK_COLUMNS[task]
        specs = image_specs(self.root)
        index_columns = set(pq.read_schema(index_path).names)
        metadata = (*COMMON_METADATA, *cols.metadata)
        missing = [c for c in cols.images if c not in specs]
        missing += [c for c in (*metadata, "landmarks") if c not in index_columns]
        if missing:
            raise ValueError(
                f"{self.root} lacks column(s) {missing} that the {task!r} task needs "
                f"(it has image columns {sorted(specs)}): is it the pairs_{task} output?"
            )
        if flip and split == "test":
            raise ValueError("flip is a training augmentation; the test split is read unflipped")
        if heatmap_size is not None and heatmap_size < 1:
            raise ValueError(f"heatmap_size must be >= 1 or None, not {heatmap_size}")
        if sigma is None and heatmap_size is not None:
            sigma = SIGMA_FRACTION * heatmap_size
        elif sigma is not None and not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, not {seed}")

        self.task, self.split = task, split
        self.hr_size = _side(self.root, "hr", specs["hr"].shape)
        self.lr_size = _side(self.root, "lr", specs["lr"].shape)
        self.heatmap_size, self.sigma = heatmap_size, sigma
        self.flip, self.seed, self.epoch = flip, seed, 0
        self.metadata = metadata
        filt = None if split is None else pl.col("split") == split
        # training reads rows in random order: keeping every row group's (encoded) images in
        # memory (``cache_row_groups`` large) saves re-reading a row group per sample
        self.shards = ShardDataset(
            self.root, filter=filt, images=cols.images, cache_row_groups=cache_row_groups
        )
        if len(self.shards) == 0:
            have = pl.read_parquet(index_path, columns=["split"])["split"].unique().sort()
            raise ValueError(
                f"split {split!r} of {self.root} has no rows; its splits are {have.to_list()}"
            )
        index = self.shards.index
        self._square_sides: list[int] | None = None
        if task == "occlusion":
            area = self.hr_size * self.hr_size
            self._square_sides = [
                square_side(k, r, area)
                for k, r in zip(index["mask_kind"], index["hole_ratio"], strict=True)
            ]
            index = index.with_columns(pl.Series("square_side", self._square_sides, pl.Int32))
        # the selected rows' index columns (plus square_side): the evaluation's breakdowns
        self.index: pl.DataFrame = index

    def __len__(self) -> int:
        return len(self.shards)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s flip decisions from now on."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, not {epoch}")
        self.epoch = int(epoch)

    def is_flipped(self, index: int) -> bool:
        """Whether item ``index`` is mirrored in the current epoch."""
        return self.flip and flip_decision(self.seed, self.epoch, index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n  # the flip draw keys on the non-negative position
        raw = self.shards[index]
        item: dict[str, Any] = {}
        for k in self.shards.images:
            if k == "mask":
                item[k] = (raw[k] > 0).to(torch.float32)  # 255 = hole -> 1
            else:
                item[k] = normalize_image(raw[k])
        landmarks = raw["landmarks"].to(torch.float32)
        meta = {k: raw[k] for k in self.metadata}
        if self._square_sides is not None:
            meta["square_side"] = self._square_sides[index]
        flipped = self.is_flipped(index)
        if flipped:
            for k in self.shards.images:
                item[k] = item[k].flip(-1)
            landmarks = flip_landmarks(landmarks, self.hr_size)
            if "yaw" in meta:
                meta["yaw"] = -meta["yaw"]  # the mirrored head looks the other way
        item["landmarks"] = landmarks
        if self.heatmap_size is not None:
            item["heatmaps"] = gaussian_heatmaps(
                landmarks[None], self.hr_size, self.heatmap_size, self.sigma
            )[0]
        item["flipped"] = flipped
        item.update(meta)
        return item

    def __repr__(self) -> str:
        return (
            f"TaskDataset({str(self.root)!r}, task={self.task!r}, split={self.split!r}, "
            f"{len(self)} items, flip={self.flip})"
        )
