"""Task datasets over tiny pair sets built by the project's own stages from 3 bundled people."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from datagen.core.shards import ShardDataset, image_specs
from datagen.stages.pairs_illumination import build_pairs_illumination
from datagen.stages.pairs_occlusion import build_pairs_occlusion
from datagen.stages.pairs_pose import build_pairs_pose
from models.data.tasks import (
    FLIP_68,
    SIGMA_FRACTION,
    TASK_COLUMNS,
    TASKS,
    TaskDataset,
    denormalize_image,
    flip_decision,
    flip_landmarks,
    normalize_image,
)
from tests.helpers import small_faces, small_fits

SHARDS = {"samples_per_shard": 8}
PEOPLE = ("001", "002", "003")  # 6 faces; one person (2 faces) in the test split


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    return small_faces(tmp_path_factory, PEOPLE, 0.34, SHARDS)


@pytest.fixture(scope="module")
def pose_dir(faces_dir, tmp_path_factory) -> Path:
    fits = small_fits(tmp_path_factory, faces_dir, SHARDS)
    out = tmp_path_factory.mktemp("pose")
    params = {"yaws": [-40, 22]}
    build_pairs_pose(faces_dir, fits, out, params, {}, SHARDS, 0, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def occlusion_dir(faces_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("occ")
    build_pairs_occlusion(faces_dir, out, {"k": 4}, {}, SHARDS, 0, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def illumination_dir(faces_dir, tiny_rain, tmp_path_factory) -> Path:
    ckpt, _, _ = tiny_rain
    out = tmp_path_factory.mktemp("ill")
    params = {"k": 2, "checkpoint": str(ckpt), "device": "cpu"}
    build_pairs_illumination(faces_dir, out, params, {}, SHARDS, seed=0, progress=False)
    return out


def pairs_dir(request, task: str) -> Path:
    return request.getfixturevalue(f"{task}_dir")


# --------------------------------------------------------------------------- items


@pytest.mark.parametrize("task", TASKS)
def test_items_have_the_documented_shapes_dtypes_ranges_and_metadata(request, task):
    root = pairs_dir(request, task)
    specs = image_specs(root)
    hr, lr = specs["hr"].shape[0], specs["lr"].shape[0]
    index = pl.read_parquet(root / "index.parquet")
    for split in ("train", "test"):
        ds = TaskDataset(root, task, split)
        assert len(ds) == (index["split"] == split).sum() > 0
        assert ds.hr_size == hr and ds.lr_size == lr and ds.sigma == 2.5
        for i in range(len(ds)):
            s = ds[i]
            assert s["lr"].shape == (3, lr, lr) and s["hr"].shape == (3, hr, hr)
            images = [k for k in ("lr", "hr", "guide") if k in s]
            assert images == [k for k in TASK_COLUMNS[task].images if k != "mask"]
            for k in images:
                assert s[k].dtype == torch.float32
                assert s[k].min() >= -1 and s[k].max() <= 1 and s[k].std() > 0.05
            assert s["landmarks"].shape == (68, 2) and s["landmarks"].dtype == torch.float32
            assert s["heatmaps"].shape == (68, 64, 64) and s["heatmaps"].dtype == torch.float32
            assert s["split"] == split and s["flipped"] is False
            for k in ("pair_id", "face_id", "identity"):
                assert isinstance(s[k], str) and s[k]
            row = index.row(index["pair_id"].to_list().index(s["pair_id"]), named=True)
            assert s["face_id"] == row["face_id"] and s["identity"] == row["identity"]
            if task == "illumination":
                assert s["guide"].shape == (3, hr, hr)
                assert s["guide_face_id"] == row["guide_face_id"] != s["face_id"]
                assert isinstance(s["guide_identity"], str)
            if task == "pose":
                assert isinstance(s["yaw"], float) and s["yaw"] == row["yaw"]
            if task == "occlusion":
                m = s["mask"]
                assert m.shape == (1, hr, hr) and m.dtype == torch.float32
                assert set(m.unique().tolist()) <= {0.0, 1.0}
                assert abs(m.mean().item() - s["hole_ratio"]) < 1e-6
                assert s["mask_kind"] == row["mask_kind"] and isinstance(s["mask_bin"], int)
                assert isinstance(s["hole_ratio"], float) and isinstance(s["square_side"], int)
    # the default collate batches the dicts: tensors stacked, strings as lists
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["hr"].shape == (2, 3, hr, hr) and batch["heatmaps"].shape == (2, 68, 64, 64)
    assert isinstance(batch["pair_id"], list) and len(batch["pair_id"]) == 2


@pytest.mark.parametrize("task", TASKS)
def test_images_are_the_shards_uint8_over_127_5_minus_1_exactly(request, task):
    root = pairs_dir(request, task)
    ds = TaskDataset(root, task, "train")
    raw = ShardDataset(root, filter=pl.col("split") == "train")
    for i in (0, len(ds) - 1):
        s, r = ds[i], raw[i]
        assert s["pair_id"] == r["pair_id"]
        for k in TASK_COLUMNS[task].images:
            if k == "mask":
                assert torch.equal(s[k], (r[k] == 255).to(torch.float32))
            else:
                assert torch.equal(s[k], r[k].to(torch.float32) / 127.5 - 1)
                assert torch.equal(denormalize_image(s[k]), r[k])
        assert torch.equal(s["landmarks"], r["landmarks"].to(torch.float32))


def test_value_range_round_trips_every_uint8_value():
    u = torch.arange(256, dtype=torch.uint8)
    x = normalize_image(u)
    assert x[0] == -1 and x[-1] == 1 and x.dtype == torch.float32
    assert torch.equal(denormalize_image(x), u)
    assert torch.equal(denormalize_image(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255]))
    with pytest.raises(TypeError, match="uint8"):
        normalize_image(x)


def test_occlusion_square_side_is_the_holes_side(occlusion_dir):
    ds = TaskDataset(occlusion_dir, "occlusion", None)
    kinds = set(ds.index["mask_kind"])
    assert kinds == {"square", "irregular"}, kinds
    for i in range(len(ds)):
        s = ds[i]
        hole = s["mask"][0] > 0
        if s["mask_kind"] == "square":
            rows, cols = hole.any(1).sum().item(), hole.any(0).sum().item()
            assert s["square_side"] == rows == cols and rows * cols == hole.sum()
            assert 16 <= s["square_side"] <= 64
        else:
            assert s["square_side"] == -1
    assert ds.index["square_side"].to_list() == [ds[i]["square_side"] for i in range(len(ds))]


# --------------------------------------------------------------------------- heatmaps


def test_heatmap_peaks_land_on_the_mapped_landmarks(pose_dir):
    for size, sigma in ((64, None), (32, 1.0)):
        ds = TaskDataset(pose_dir, "pose", "train", heatmap_size=size, sigma=sigma)
        assert ds.sigma == (sigma or SIGMA_FRACTION * 64)
        s = ds[1]
        maps, lm = s["heatmaps"], s["landmarks"]
        assert maps.shape == (68, size, size)
        peak = maps.flatten(1).argmax(1)
        got = torch.stack([peak % size, peak // size], 1)  # (x, y) of each map's maximum
        want = ((lm + 0.5) * size / ds.hr_size - 0.5).round().long()
        assert torch.equal(got, want)
        # the peak is the Gaussian at the grid point nearest the landmark: under 1/2 px each way
        assert maps.amax((1, 2)).min() >= np.exp(-0.5 / (2 * ds.sigma**2)) - 1e-6
    assert "heatmaps" not in TaskDataset(pose_dir, "pose", "train", heatmap_size=None)[0]


# --------------------------------------------------------------------------- flips


def test_flip_68_is_the_ibug_mirror():
    perm = list(FLIP_68)
    assert sorted(perm) == list(range(68))
    assert [perm[perm[k]] for k in range(68)] == list(range(68))  # twice is the identity
    pairs = {0: 16, 16: 0, 8: 8, 17: 26, 21: 22, 36: 45, 45: 36, 39: 42, 37: 44, 40: 47}
    pairs |= {31: 35, 33: 33, 48: 54, 54: 48, 51: 51, 57: 57, 55: 59, 60: 64, 62: 62, 66: 66}
    for k, v in pairs.items():
        assert perm[k] == v, k
    assert [k for k in range(68) if perm[k] == k] == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def test_flipping_a_frontal_face_keeps_each_landmark_near_its_place(faces_dir):
    """Aligned frontal faces are nearly symmetric: mirrored and renumbered, the landmarks land
    close to the originals; mirrored without renumbering they would not."""
    lm = torch.tensor(pl.read_parquet(faces_dir / "index.parquet")["landmarks"].to_list())
    size = image_specs(faces_dir)["hr"].shape[1]
    flipped = flip_landmarks(lm, size)
    assert torch.allclose(flip_landmarks(flipped, size), lm, atol=1e-4)
    err = (flipped - lm).norm(dim=-1).mean().item()
    mirrored_only = lm.clone()
    mirrored_only[..., 0] = size - 1 - lm[..., 0]
    assert err < 3.0 and (mirrored_only - lm).norm(dim=-1).mean().item() > 10 * err


def flip_epoch(ds: TaskDataset) -> int:
    """An epoch whose draws flip some items and leave others."""
    for epoch in range(20):
        got = {flip_decision(ds.seed, epoch, i) for i in range(len(ds))}
        if got == {True, False}:
            return epoch
    raise AssertionError("no epoch mixes flipped and unflipped items")


@pytest.mark.parametrize("task", TASKS)
def test_flip_mirrors_images_landmarks_heatmaps_and_yaw(request, task):
    root = pairs_dir(request, task)
    plain = TaskDataset(root, task, "train")
    ds = TaskDataset(root, task, "train", flip=True, seed=3)
    ds.set_epoch(flip_epoch(ds))
    w = ds.hr_size
    seen = set()
    for i in range(len(ds)):
        a, b = plain[i], ds[i]
        assert b["flipped"] == ds.is_flipped(i) == flip_decision(3, ds.epoch, i)
        seen.add(b["flipped"])
        assert b["pair_id"] == a["pair_id"]
        if not b["flipped"]:
            for k in (*TASK_COLUMNS[task].images, "landmarks", "heatmaps"):
                assert torch.equal(a[k], b[k])
            continue
        for k in TASK_COLUMNS[task].images:
            assert torch.equal(b[k], a[k].flip(-1)) and not torch.equal(b[k], a[k])
        la, lb = a["landmarks"], b["landmarks"]
        assert torch.equal(lb[36], torch.stack([w - 1 - la[45, 0], la[45, 1]]))
        assert torch.equal(lb[45], torch.stack([w - 1 - la[36, 0], la[36, 1]]))
        assert torch.equal(lb[30], torch.stack([w - 1 - la[30, 0], la[30, 1]]))
        assert torch.equal(lb[0, 1], la[16, 1]) and torch.equal(lb[48, 1], la[54, 1])
        # the heatmaps are drawn at the flipped landmarks: the mirrored, renumbered maps
        assert torch.allclose(b["heatmaps"], a["heatmaps"][list(FLIP_68)].flip(-1), atol=1e-5)
        if task == "pose":
            assert b["yaw"] == -a["yaw"] != 0
    assert seen == {True, False}


def test_flip_decisions_are_reproducible_per_seed_epoch_and_index(pose_dir):
    a = TaskDataset(pose_dir, "pose", "train", flip=True, seed=0)
    b = TaskDataset(pose_dir, "pose", "train", flip=True, seed=0)
    n = len(a)
    decisions = {}
    for epoch in range(4):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        decisions[epoch] = [a.is_flipped(i) for i in range(n)]
        assert decisions[epoch] == [b.is_flipped(i) for i in reversed(range(n))][::-1]
        assert decisions[epoch] == [a[i]["flipped"] for i in range(n)]
    assert len({tuple(d) for d in decisions.values()}) > 1  # epochs differ for some indices
    other = TaskDataset(pose_dir, "pose", "train", flip=True, seed=1)
    assert any(other.is_flipped(i) != decisions[0][i] for i in range(n))
    assert not any(TaskDataset(pose_dir, "pose", "train").is_flipped(i) for i in range(n))
    # DataLoader workers (other processes, shuffled order) draw the same decisions
    a.set_epoch(2)
    loader = torch.utils.data.DataLoader(a, batch_size=3, shuffle=True, num_workers=2)
    got = {
        p: bool(f)
        for batch in loader
        for p, f in zip(batch["pair_id"], batch["flipped"], strict=True)
    }
    assert got == {a.index["pair_id"][i]: decisions[2][i] for i in range(n)}
    with pytest.raises(ValueError, match="epoch"):
        a.set_epoch(-1)


# --------------------------------------------------------------------------- errors


def test_bad_inputs_are_clear_errors(faces_dir, pose_dir, occlusion_dir, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"{tmp_path} is not a facepairs shard dataset")
    ):
        TaskDataset(tmp_path, "pose")
    with pytest.raises(ValueError, match=r"\['mask', 'mask_kind', 'mask_bin', 'hole_ratio'\]") as e:
        TaskDataset(pose_dir, "occlusion")
    assert str(pose_dir) in str(e.value) and "'occlusion'" in str(e.value)
    with pytest.raises(ValueError, match=r"\['guide', 'guide_face_id', 'guide_identity'\]"):
        TaskDataset(occlusion_dir, "illumination")
    with pytest.raises(ValueError, match=r"\['lr', 'pair_id', 'yaw'\].*'pose'"):
        TaskDataset(faces_dir, "pose")
    with pytest.raises(ValueError, match="illumination.*pose.*occlusion"):
        TaskDataset(pose_dir, "inpainting")
    with pytest.raises(ValueError, match=r"split 'val'.*\['test', 'train'\]"):
        TaskDataset(pose_dir, "pose", "val")
    with pytest.raises(ValueError, match="flip"):
        TaskDataset(pose_dir, "pose", "test", flip=True)
    with pytest.raises(ValueError, match="sigma"):
        TaskDataset(pose_dir, "pose", sigma=0)
    with pytest.raises(IndexError):
        TaskDataset(pose_dir, "pose", "test")[100]
