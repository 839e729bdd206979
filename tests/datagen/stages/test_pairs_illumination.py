"""The illumination pairs stage (CPGAN): k RaIN relightings per face, degraded, with a guide."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from datagen import rain
from datagen.core.pairs import face_refs
from datagen.core.shards import ShardDataset, verify
from datagen.stages.pairs_illumination import build_pairs_illumination, guide_candidates
from tests.helpers import small_faces

SHARDS = {"encoding": "delta-zstd", "samples_per_shard": 12}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return small_faces(tmp_path_factory, ("001", "002", "003", "004", "005"), 0.4, SHARDS)


def build(faces, out, ckpt, **kw):
    params = {"k": 3, "checkpoint": str(ckpt), "device": "cpu", **kw}
    return build_pairs_illumination(faces, out, params, {}, SHARDS, seed=0, progress=False)


def test_k_pairs_per_face_with_a_guide_of_another_person(faces, tiny_rain, tmp_path):
    ckpt, model, _ = tiny_rain
    out = tmp_path / "ill"
    summary = build(faces, out, ckpt)
    index = pl.read_parquet(out / "index.parquet")
    n_faces = pl.read_parquet(faces / "index.parquet").height
    assert summary["pairs"] == index.height == 3 * n_faces and summary["rejects"] == 0
    assert index.group_by("face_id").len()["len"].to_list() == [3] * n_faces
    guides = index.join(
        pl.read_parquet(faces / "index.parquet").select(
            pl.col("face_id").alias("guide_face_id"),
            pl.col("split").alias("guide_split"),
            pl.col("identity").alias("gi"),
        ),
        on="guide_face_id",
    )
    assert guides.height == index.height
    assert (guides["guide_face_id"] != guides["face_id"]).all()
    assert (guides["guide_split"] == guides["split"]).all()
    assert (guides["gi"] == guides["guide_identity"]).all()
    assert (guides["guide_identity"] != guides["identity"]).all()  # every split has 2+ people
    assert verify(out) == []

    ds = ShardDataset(out, images=["lr", "hr", "hr_ni", "guide"])
    faces_ds = ShardDataset(faces, images=["hr"])
    face_rows = {
        fid: i for i, fid in enumerate(pl.read_parquet(faces / "index.parquet")["face_id"])
    }
    row0 = index.row(0, named=True)
    s = ds[0]
    assert s["lr"].shape == (3, 16, 16) and s["hr_ni"].shape == (3, 128, 128)
    assert np.array_equal(s["hr"].numpy(), faces_ds[face_rows[row0["face_id"]]]["hr"].numpy())
    assert np.array_equal(
        s["guide"].numpy(), faces_ds[face_rows[row0["guide_face_id"]]]["hr"].numpy()
    )
    # hr_ni is the model's relighting of hr with the stored latent
    z = np.asarray(row0["z"], np.float32)[None]
    import torch

    again = rain.relight_face(model, s["hr"].permute(1, 2, 0).numpy(), torch.from_numpy(z))[0]
    assert np.array_equal(again, s["hr_ni"].permute(1, 2, 0).numpy())
    # the k samples of a face differ
    face0 = [ds[i]["hr_ni"].numpy().tobytes() for i in range(3)]
    assert len(set(face0)) == 3


def test_rerun_resumes_and_gives_the_same_bytes(faces, tiny_rain, tmp_path):
    ckpt, _, _ = tiny_rain
    a, b = tmp_path / "a", tmp_path / "b"
    build(faces, a, ckpt)
    build(faces, b, ckpt)
    for shard in sorted(a.glob("shard-*.parquet")):
        assert shard.read_bytes() == (b / shard.name).read_bytes()
    before = {p.name: p.stat().st_mtime_ns for p in a.glob("shard-*.parquet")}
    build(faces, a, ckpt)
    assert before == {p.name: p.stat().st_mtime_ns for p in a.glob("shard-*.parquet")}
    # a shard lost halfway is rebuilt alone
    lost = sorted(a.glob("shard-*.parquet"))[-1]
    lost.unlink()
    build(faces, a, ckpt)
    assert lost.read_bytes() == (b / lost.name).read_bytes()
    assert verify(a) == []


def test_missing_checkpoint_is_a_clear_error(faces, tmp_path):
    with pytest.raises(rain.CheckpointError, match="rain_train"):
        build(faces, tmp_path / "x", tmp_path / "nowhere")


def test_a_lone_face_in_its_split_is_a_reject(faces):
    refs, _ = face_refs(faces)
    lone = refs[0]
    assert guide_candidates([lone], lone) == []
    same_person = [r for r in refs if r.identity == lone.identity]
    # with only the person's other photo in the split, that photo is the guide
    assert [r.face_id for r in guide_candidates(same_person, lone)] == [
        r.face_id for r in same_person if r.face_id != lone.face_id
    ]
