import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from datagen.core.shards import ShardDataset, verify
from datagen.face.masks import MaskFolderError, irregular_mask, square_mask
from datagen.stages.pairs_occlusion import OcclusionParams, build_pairs_occlusion, make_mask
from tests.helpers import small_faces

OCC = {"k": 8, "mix": {"irregular": 0.5, "square": 0.5, "folder": 0.0}}
SHARDS = {"samples_per_shard": 16}


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    return small_faces(tmp_path_factory, ("001", "002", "003", "004", "005"), 0.4, SHARDS)


@pytest.fixture(scope="module")
def occ_dir(faces_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("occ")
    build_pairs_occlusion(faces_dir, out, OCC, {}, SHARDS, seed=0, workers=1, progress=False)
    return out


def test_one_row_per_face_and_mask_with_both_kinds_in_both_splits(faces_dir, occ_dir):
    faces = pl.read_parquet(faces_dir / "index.parquet")
    index = pl.read_parquet(occ_dir / "index.parquet")
    assert len(index) == 8 * len(faces) == 80
    assert index["pair_id"].is_unique().all()
    assert (index.group_by("face_id").len()["len"] == 8).all()
    kinds = index.group_by("split", "mask_kind").len()
    assert len(kinds) == 4, kinds  # {train, test} x {irregular, square}
    for col in ("pair_id", "face_id", "identity", "split", "mask_kind", "hole_ratio", "seed"):
        assert col in index.columns
    for col in ("angle", "shift_x", "shift_y", "scale", "degrade_matrix", "landmarks_lr"):
        assert col in index.columns
    # Pro-UIGAN default: no misalignment
    assert (index["angle"] == 0).all() and (index["scale"] == 1).all()
    styles = index.group_by("mask_kind").agg(pl.col("mask_style").unique())
    assert dict(zip(styles["mask_kind"], styles["mask_style"].to_list(), strict=True)) == {
        "irregular": ["strokes"],
        "square": [""],
    }
    assert verify(occ_dir) == []


def test_images_read_back_with_their_shapes_and_hole(occ_dir):
    ds = ShardDataset(occ_dir)
    s = ds[5]
    assert (
        s["lr"].shape == (3, 16, 16)
        and s["hr"].shape == (3, 128, 128)
        and s["mask"].shape == (1, 128, 128)
    )
    assert s["lr"].dtype == torch.uint8
    hole = s["mask"][0] > 0
    assert abs(hole.float().mean().item() - s["hole_ratio"]) < 1e-6
    # the HR target is the clean face: no zero-filled hole in it
    assert s["hr"][:, hole].float().mean() > 20


def test_seed_column_replays_the_mask(occ_dir):
    index = pl.read_parquet(occ_dir / "index.parquet")
    ds = ShardDataset(occ_dir, images=["mask"])
    for i in (0, 9, 33):
        row = index.row(i, named=True)
        rng = np.random.default_rng(row["seed"])
        kind = ("irregular", "square", "folder")[int(rng.choice(3, p=[0.5, 0.5, 0.0]))]
        assert kind == row["mask_kind"]
        if kind == "irregular":
            mask = irregular_mask(rng, 128, int(rng.choice(range(6))))[0]
        else:
            mask = square_mask(rng, 128, 16, 64, np.asarray(row["landmarks"]))[0]
        assert np.array_equal(mask, ds[i]["mask"][0].numpy())


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_bytes_for_one_and_two_workers(faces_dir, occ_dir, tmp_path):
    build_pairs_occlusion(
        faces_dir, tmp_path / "w2", OCC, {}, SHARDS, seed=0, workers=2, progress=False
    )
    one = _digest(occ_dir)
    assert len([n for n in one if n.startswith("shard-")]) == 5
    assert _digest(tmp_path / "w2") == one


def test_transform_switch_and_mask_folder(faces_dir, tmp_path):
    from PIL import Image

    masks = tmp_path / "masks"
    masks.mkdir()
    m = np.zeros((256, 256), np.uint8)
    m[64:192, 64:192] = 255
    Image.fromarray(m).save(masks / "box.png")
    occ = {
        "k": 2,
        "mix": {"folder": 1.0},
        "mask_folder": str(masks),
        "transform": True,
        "fill": "noise",
    }
    build_pairs_occlusion(
        faces_dir, tmp_path / "f", occ, {}, SHARDS, seed=0, workers=1, progress=False
    )
    index = pl.read_parquet(tmp_path / "f" / "index.parquet")
    assert set(index["mask_kind"]) == {"folder"} and set(index["mask_file"]) == {"box.png"}
    assert (index["angle"].abs() > 0).all() and (index["angle"].abs() <= 10).all()


def test_bad_mask_folder_and_params_are_clear_errors(faces_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    occ = {"mix": {"folder": 1.0}, "mask_folder": str(tmp_path / "empty")}
    with pytest.raises(MaskFolderError, match="holds no image files"):
        build_pairs_occlusion(faces_dir, tmp_path / "o", occ, {}, SHARDS, seed=0, progress=False)
    with pytest.raises(ValueError, match="mask_folder is not set"):
        build_pairs_occlusion(
            faces_dir, tmp_path / "o", {"mix": {"folder": 1.0}}, {}, SHARDS, seed=0, progress=False
        )
    with pytest.raises(ValueError, match="unknown kinds"):
        build_pairs_occlusion(
            faces_dir, tmp_path / "o", {"mix": {"circles": 1.0}}, {}, SHARDS, seed=0, progress=False
        )
    assert not (tmp_path / "o").exists()


def test_irregular_style_param_picks_the_generator():
    lm = np.array([[30.0, 35.0], [98.0, 35.0], [64.0, 118.0]])
    p = OcclusionParams.from_params({"mix": {"irregular": 1.0}, "irregular_style": "blobs"})
    mask, meta = make_mask(np.random.default_rng(5), p, 128, lm, None)
    rng = np.random.default_rng(5)
    rng.choice(3, p=p.weights())  # the kind draw comes first
    blobs = irregular_mask(rng, 128, int(rng.choice(p.irregular_bins)), "blobs")[0]
    assert np.array_equal(mask, blobs) and meta["mask_style"] == "blobs"
    default = make_mask(
        np.random.default_rng(5), OcclusionParams(mix={"irregular": 1.0}), 128, lm, None
    )
    assert default[1]["mask_style"] == "strokes" and not np.array_equal(default[0], mask)
    with pytest.raises(ValueError, match="irregular_style must be one of"):
        OcclusionParams.from_params({"irregular_style": "zigzag"})
