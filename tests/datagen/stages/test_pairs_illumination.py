"""The illumination pairs stage (CPGAN): k relightings per face (RaIN, physical or a mix),
degraded, with a guide."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from datagen import rain
from datagen.core.pairs import face_refs
from datagen.core.shards import ShardDataset, verify
from datagen.face3d import morphable
from datagen.face3d.relight import LIGHT_FIELDS, relight_with
from datagen.stages.pairs_illumination import (
    IlluminationParams,
    build_pairs_illumination,
    guide_candidates,
)
from tests.helpers import small_faces, small_fits

SHARDS = {"encoding": "delta-zstd", "samples_per_shard": 12}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return small_faces(tmp_path_factory, ("001", "002", "003", "004", "005"), 0.4, SHARDS)


@pytest.fixture(scope="module")
def fits(faces, tmp_path_factory):
    return small_fits(tmp_path_factory, faces, SHARDS)


def build(faces, out, ckpt, fits=None, relight=None, **kw):
    params = {"k": 3, "checkpoint": str(ckpt), "device": "cpu", **kw}
    return build_pairs_illumination(
        faces, out, params, {}, SHARDS, 0, relight, fits, progress=False
    )


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


def test_every_pair_replays_from_its_recorded_source(faces, fits, tiny_rain, tmp_path):
    """A mix: each pair says where its NI face came from and with what (latent or light), and
    that record alone remakes the image, byte for byte."""
    import torch

    ckpt, model, _ = tiny_rain
    out = tmp_path / "mix"
    # a strong, varied light, so a wrong replay could not pass by accident
    relight = {
        "azimuth": [0, 120],
        "ambient": [0.0, 0.1],
        "ambient_scale": "linear",
        "tint": 0.2,
        "second": 0.5,
    }
    summary = build(faces, out, ckpt, fits, relight, k=4, source="mix", mix=0.5)
    index = pl.read_parquet(out / "index.parquet")
    assert summary["source"] == "mix" and summary["pairs"] == index.height
    counts = dict(index.group_by("source").len().iter_rows())
    assert counts.get("rain", 0) > 0 and counts.get("physical", 0) > 0
    assert set(index.schema["light"].to_schema()) == {*LIGHT_FIELDS, "shadow_fraction"}
    physical = index.filter(pl.col("source") == "physical")
    assert physical["z"].null_count() == physical.height
    assert physical["rain_checkpoint"].null_count() == physical.height
    assert index.filter(pl.col("source") == "rain")["light"].null_count() == counts["rain"]
    # polars answers questions about the lights from the index alone
    assert physical.select(pl.col("light").struct.field("azimuth").abs().max()).item() <= 120

    fitted = morphable.load_fits(fits)
    ds = ShardDataset(out, images=["hr", "hr_ni"])
    for i, row in enumerate(index.iter_rows(named=True)):
        s = ds[i]
        hr = s["hr"].permute(1, 2, 0).numpy()
        if row["source"] == "physical":
            light = {k: row["light"][k] for k in LIGHT_FIELDS}
            fit = morphable.fit_from_record(fitted[row["face_id"]])
            again = relight_with(hr, fit, light, True)[0]
        else:
            z = torch.from_numpy(np.asarray(row["z"], np.float32)[None])
            again = rain.relight_face(model, hr, z)[0]
        assert np.array_equal(again, s["hr_ni"].permute(1, 2, 0).numpy()), row["pair_id"]
    assert verify(out) == []


def test_source_physical_needs_no_rain_latent_and_rebuilds_on_new_lights(
    faces, fits, tiny_rain, tmp_path
):
    ckpt, _, _ = tiny_rain
    out = tmp_path / "phys"
    build(faces, out, ckpt, fits, {"azimuth": [0, 60]}, source="physical")
    index = pl.read_parquet(out / "index.parquet")
    assert (index["source"] == "physical").all() and index["z"].null_count() == index.height
    azimuths = index.select(pl.col("light").struct.field("azimuth"))
    assert azimuths.to_series().abs().max() <= 60
    # another light range is another dataset: every shard is rebuilt
    before = {p.name: p.read_bytes() for p in out.glob("shard-*.parquet")}
    build(faces, out, ckpt, fits, {"azimuth": [0, 30]}, source="physical")
    after = {p.name: p.read_bytes() for p in out.glob("shard-*.parquet")}
    assert before.keys() == after.keys() and all(before[k] != after[k] for k in before)
    assert (
        pl.read_parquet(out / "index.parquet")
        .select(pl.col("light").struct.field("azimuth").abs().max())
        .item()
        <= 30
    )


def test_physical_source_without_fits_is_a_clear_error(faces, tiny_rain, tmp_path):
    ckpt, _, _ = tiny_rain
    with pytest.raises(FileNotFoundError, match="fits stage"):
        build(faces, tmp_path / "x", ckpt, tmp_path / "nofits", source="physical")


def test_source_params_are_checked():
    assert IlluminationParams().source == "rain"
    with pytest.raises(ValueError, match=r"illumination\.source must be one of"):
        IlluminationParams.from_params({"source": "lamp"})
    with pytest.raises(ValueError, match=r"illumination\.mix must be a share"):
        IlluminationParams.from_params({"source": "mix", "mix": 1.5})
    assert not IlluminationParams(source="mix", mix=0.0).uses_fits
    assert not IlluminationParams(source="mix", mix=1.0).uses_rain
