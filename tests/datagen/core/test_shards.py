import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from datagen.core import shards
from datagen.core.shards import ImageSpec, ShardDataset, decode_image, encode_image, verify
from tests import slow_writer
from tests.helpers import REPO


@pytest.mark.parametrize("encoding", shards.ENCODINGS)
@pytest.mark.parametrize("shape", [(16, 16, 3), (128, 128, 3), (128, 128)])
def test_encodings_round_trip_losslessly(encoding, shape):
    a = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    spec = ImageSpec(shape)
    assert np.array_equal(decode_image(encode_image(a, spec, encoding), spec, encoding), a)


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        encode_image(np.zeros((8, 8, 3), np.uint8), ImageSpec((16, 16, 3)), "zstd")


@pytest.fixture
def written(tmp_path) -> Path:
    out = tmp_path / "ds"
    slow_writer.write(out)
    return out


def test_index_rejects_and_schema_metadata(written):
    index = pl.read_parquet(written / "index.parquet")
    rejects = pl.read_parquet(written / "rejects.parquet")
    assert set(index["key"]) | set(rejects["source"]) == {f"item-{i:03d}" for i in range(24)}
    assert len(rejects) == 2 and set(rejects["reason"]) == {"test reject"}
    assert "img" not in index.columns and {"shard", "row"} <= set(index.columns)
    assert len(list(written.glob("shard-*.parquet"))) == 5
    field = pq.read_schema(written / "shard-00000.parquet").field("img")
    assert (
        field.metadata[b"shape"] == b"[32, 32, 3]" and field.metadata[b"encoding"] == b"delta-zstd"
    )
    assert b"facepairs.images" in pq.read_schema(written / "index.parquet").metadata


def test_reader_random_access_filter_and_iterable(written):
    ds = ShardDataset(written)
    assert len(ds) == 22
    for i in (0, 7, 21, 3):
        s = ds[i]
        ref = slow_writer.make_sample(s["key"])
        assert s["img"].dtype == torch.uint8 and s["img"].shape == (3, 32, 32)
        assert torch.equal(s["img"], torch.from_numpy(ref["img"]).permute(2, 0, 1))
        assert torch.equal(s["mask"], torch.from_numpy(ref["mask"])[None])
        assert torch.allclose(s["pts"], torch.from_numpy(ref["pts"]))
    few = ShardDataset(
        written, filter=pl.col("key").is_in(["item-003", "item-020"]), images=["mask"]
    )
    assert len(few) == 2 and "img" not in few[0] and few[1]["key"] == "item-020"
    keys = [s["key"] for s in ds.iterable()]
    assert keys == list(ds.index["key"])
    shuffled = [s["key"] for s in ds.iterable(shuffle=True, seed=1)]
    assert sorted(shuffled) == sorted(keys) and shuffled != keys
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["img"].shape == (4, 3, 32, 32) and batch["pts"].shape == (4, 3, 2)


def test_iterable_splits_shards_across_loader_workers(written):
    ds = ShardDataset(written, images=["mask"])
    loader = torch.utils.data.DataLoader(ds.iterable(), batch_size=None, num_workers=2)
    assert sorted(s["key"] for s in loader) == sorted(ds.index["key"])


def test_unknown_image_column_is_a_clear_error(written):
    with pytest.raises(KeyError, match="no image column"):
        ShardDataset(written, images=["hr"])


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datagen.tools.shards", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_verify_passes_then_names_the_shard_with_a_flipped_byte(written):
    ok = run_cli("verify", written)
    assert ok.returncode == 0, ok.stderr
    victim = written / "shard-00002.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    bad = run_cli("verify", written)
    assert bad.returncode != 0
    assert "shard-00002.parquet" in bad.stderr and "checksum" in bad.stderr


def test_verify_catches_missing_extra_and_index_edits(written, tmp_path):
    (written / "shard-00001.parquet").rename(tmp_path / "moved.parquet")
    problems = verify(written)
    assert any("shard-00001.parquet: listed in the index but missing" in p for p in problems)
    (tmp_path / "moved.parquet").rename(written / "shard-00009.parquet")
    assert any(
        "shard-00009.parquet: shard on disk but not in the index" in p for p in verify(written)
    )


def test_show_writes_a_contact_sheet(written, tmp_path):
    out = tmp_path / "grid.png"
    r = run_cli("show", written, "--n", "9", "--out", out, "--column", "img")
    assert r.returncode == 0, r.stderr
    import cv2

    grid = cv2.imread(str(out))
    assert grid.shape == (3 * 34, 3 * 34, 3)
    assert run_cli("show", tmp_path / "nowhere", "--out", out).returncode != 0


def test_same_bytes_for_any_worker_count(tmp_path):
    slow_writer.write(tmp_path / "w1", workers=1)
    slow_writer.write(tmp_path / "w2", workers=2)
    for p in sorted((tmp_path / "w1").iterdir()):
        assert p.read_bytes() == (tmp_path / "w2" / p.name).read_bytes(), p.name


def test_killed_write_leaves_no_complete_looking_shard_and_rerun_finishes(tmp_path):
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "tests.slow_writer", str(out), "0.1"], cwd=REPO)
    deadline = time.time() + 60
    while not (out / "shard-00001.parquet").exists():
        assert time.time() < deadline and proc.poll() is None, (
            "writer ended before it could be killed"
        )
        time.sleep(0.02)
    time.sleep(0.25)  # now in the middle of the next shard
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert not (out / "index.parquet").exists()
    done = sorted(p.name for p in out.glob("shard-*.parquet"))
    assert done and len(done) < 5
    for name in done:  # whatever carries a shard's name is whole and readable
        assert pq.read_table(out / name).num_rows > 0
    survivors = {n: (out / n).stat().st_mtime_ns for n in done}

    counts = slow_writer.write(out)
    assert counts == {"samples": 22, "rejects": 2, "shards": 5}
    assert {n: (out / n).stat().st_mtime_ns for n in done} == survivors  # resumed, not redone
    assert not list(out.glob("*.tmp-*"))
    assert verify(out) == []
    clean = tmp_path / "clean"
    slow_writer.write(clean)
    for p in sorted(clean.iterdir()):
        assert p.read_bytes() == (out / p.name).read_bytes(), p.name


def test_truncated_shard_is_redone_on_rerun(written):
    victim = written / "shard-00003.parquet"
    victim.write_bytes(victim.read_bytes()[:1000])
    slow_writer.write(written)
    assert verify(written) == []


def test_shards_written_by_other_code_are_redone(tmp_path, monkeypatch):
    from datagen.core import code

    out = tmp_path / "ds"
    slow_writer.write(out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")}
    slow_writer.write(out)  # same code, same params: every shard is kept
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")} == before
    monkeypatch.setattr(code, "code_fingerprint", lambda name: "changed")
    slow_writer.write(out)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")}
    assert all(after[n] != before[n] for n in before)
