import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datagen.core.pairs import FaceRef
from datagen.core.shards import ShardDataset, verify
from datagen.face3d import morphable
from datagen.stages.fits import FitsParams, build_fits, fit_face
from datagen.stages.pairs_pose import build_pairs_pose
from tests.helpers import small_faces, small_fits

SHARDS = {"samples_per_shard": 16}
YAWS = [-55, -22, 40, 75]


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    return small_faces(tmp_path_factory, ("001", "002", "003", "004"), 0.25, SHARDS)


@pytest.fixture(scope="module")
def fits_dir(faces_dir, tmp_path_factory) -> Path:
    return small_fits(tmp_path_factory, faces_dir, SHARDS)


@pytest.fixture(scope="module")
def pose_dir(faces_dir, fits_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pose")
    build_pairs_pose(
        faces_dir, fits_dir, out, {"yaws": YAWS}, {}, SHARDS, 0, workers=1, progress=False
    )
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fits_cover_every_face_and_rebuild(faces_dir, fits_dir):
    faces = pl.read_parquet(faces_dir / "index.parquet")
    fits = pl.read_parquet(fits_dir / "index.parquet")
    assert sorted(fits["face_id"]) == sorted(faces["face_id"])
    assert fits["fit_error_px"].max() < 8 and (fits["fit_error_iod"] < 0.07).all()
    assert verify(fits_dir) == []
    row = fits.row(0, named=True)
    f = morphable.fit_from_record(row)
    inner = sorted(morphable.load_model().ibug_to_vertex)
    verts = np.asarray(f.mesh.vertices)[[morphable.load_model().ibug_to_vertex[i] for i in inner]]
    err = np.linalg.norm(f.project(verts) - np.asarray(row["fit_landmarks"])[inner], axis=1)
    assert abs(err.mean() - row["fit_error_px"]) < 1e-3  # the rebuilt fit is the stored one


def test_degenerate_and_poor_fits_are_rejects_with_reasons():
    collapsed = FaceRef("x", "p", "train", 0, np.zeros((68, 2)) + 100)
    got = fit_face(collapsed, 256, FitsParams())
    assert not got.samples and got.rejects[0]["reason"] == "degenerate landmarks"
    nan = FaceRef("y", "p", "train", 0, np.full((68, 2), np.nan))
    assert fit_face(nan, 256, FitsParams()).rejects[0]["reason"] == "degenerate landmarks"


def test_one_pair_per_face_and_yaw_with_the_documented_columns(faces_dir, pose_dir):
    faces = pl.read_parquet(faces_dir / "index.parquet")
    index = pl.read_parquet(pose_dir / "index.parquet")
    assert len(index) == len(YAWS) * len(faces)
    assert index["pair_id"].is_unique().all() and index["seed"].is_unique().all()
    assert (index.group_by("face_id").agg(pl.col("yaw").sort())["yaw"].to_list()) == [
        [float(y) for y in YAWS]
    ] * len(faces)
    for col in ("pair_id", "face_id", "identity", "split", "yaw", "fit_error_px", "seed"):
        assert col in index.columns
    for col in ("angle", "shift_x", "shift_y", "scale", "landmarks_nonfrontal", "landmarks_lr"):
        assert col in index.columns
    assert (index["angle"] != 0).any()  # transform on by default
    assert set(index["split"]) == {"train", "test"}
    assert verify(pose_dir) == []


def test_images_frontal_target_and_turned_input(faces_dir, pose_dir):
    faces = ShardDataset(faces_dir, images=["hr"])
    by_id = {f: i for i, f in enumerate(faces.index["face_id"])}
    ds = ShardDataset(pose_dir)
    s = ds[0]
    assert s["lr"].shape == (3, 16, 16) and s["hr_nonfrontal"].shape == (3, 128, 128)
    assert (s["hr"] == faces[by_id[s["face_id"]]]["hr"]).all()  # the target is the frontal face
    assert (s["hr_nonfrontal"].float() - s["hr"].float()).abs().mean() > 5
    # the turned landmarks: nose tip off the eyes' midline toward the turn
    lm = np.asarray(s["landmarks_nonfrontal"])
    offset = lm[30, 0] - (lm[39, 0] + lm[42, 0]) / 2
    assert np.sign(offset) == np.sign(s["yaw"]) and abs(offset) > 3


def test_rejected_fits_are_listed_not_dropped(faces_dir, fits_dir, tmp_path):
    errors = sorted(pl.read_parquet(fits_dir / "index.parquet")["fit_error_px"])
    limit = float((errors[2] + errors[3]) / 2)  # three faces fit better than this
    strict = tmp_path / "fits"
    build_fits(faces_dir, strict, {"max_error_px": limit}, SHARDS, workers=1, progress=False)
    rej = pl.read_parquet(strict / "rejects.parquet")
    assert len(rej) == len(errors) - 3 and set(rej["reason"]) == {"poor fit"}
    out = tmp_path / "pose"
    summary = build_pairs_pose(
        faces_dir, strict, out, {"yaws": [30]}, {}, SHARDS, 0, workers=1, progress=False
    )
    assert summary["pairs"] == 3 and summary["rejects"] == len(errors) - 3
    assert set(pl.read_parquet(out / "rejects.parquet")["reason"]) == {"no fit: poor fit"}


def test_a_non_frontal_source_is_a_recorded_reject_with_its_yaw(faces_dir, fits_dir, tmp_path):
    yaws = sorted(abs(y) for y in pl.read_parquet(fits_dir / "index.parquet")["yaw"])
    limit = (yaws[1] + yaws[2]) / 2  # two faces are more frontal than this
    summary = build_pairs_pose(
        faces_dir,
        fits_dir,
        tmp_path,
        {"yaws": [30], "max_source_yaw": limit},
        {},
        SHARDS,
        0,
        workers=1,
        progress=False,
    )
    assert summary["pairs"] == 2 and summary["rejects"] == len(yaws) - 2
    rej = pl.read_parquet(tmp_path / "rejects.parquet")
    assert set(rej["reason"]) == {"source not frontal"}
    got = sorted(abs(float(d.split()[1])) for d in rej["detail"])  # "yaw +12.3 degrees, ..."
    assert np.allclose(got, yaws[2:], atol=0.05)
    assert all("pose.max_source_yaw" in d for d in rej["detail"])


def test_same_params_same_bytes_whatever_the_worker_count(faces_dir, fits_dir, tmp_path):
    runs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        build_pairs_pose(
            faces_dir,
            fits_dir,
            out,
            {"yaws": [-40, 40]},
            {},
            {"samples_per_shard": 4},
            7,
            workers,
            progress=False,
        )
        runs.append({p.name: sha(p) for p in sorted(out.glob("shard-*.parquet"))})
    assert runs[0] == runs[1] and len(runs[0]) >= 2


def test_missing_fits_is_a_clear_error(faces_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the fits stage first"):
        build_pairs_pose(faces_dir, tmp_path / "nofits", tmp_path / "out", {}, {}, SHARDS, 0)


def test_bad_pose_params_are_errors():
    from datagen.stages.pairs_pose import PoseParams

    with pytest.raises(ValueError, match="pose.yaws"):
        PoseParams.from_params({"yaws": [95]})
    with pytest.raises(KeyError, match="unknown key"):
        PoseParams.from_params({"yaw": [10]})
    with pytest.raises(ValueError, match="pose.method"):
        PoseParams.from_params({"method": "warp"})
    with pytest.raises(ValueError, match="pose.head"):
        PoseParams.from_params({"head": {"margin": 0.9, "static": 0.5}})
    with pytest.raises(ValueError, match="max_source_yaw"):
        PoseParams.from_params({"max_source_yaw": 0})
