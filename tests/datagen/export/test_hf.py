import numpy as np
import pyarrow.parquet as pq
import pytest

from datagen.core.shards import ShardDataset
from datagen.export.run import export


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_datasets_loads_the_same_pixels_and_columns(pairs, tmp_path, offline):
    datasets = pytest.importorskip("datasets")  # a dev dependency: `uv sync` installs it
    out = tmp_path / "hf"
    export(pairs, out, "hf", progress=False)
    loaded = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "test"}
    assert loaded["train"].num_rows == 22 and loaded["test"].num_rows == 8
    features = loaded["train"].features
    for col in ("lr", "hr", "mask"):
        assert isinstance(features[col], datasets.Image)
    assert features["yaw"] == datasets.Value("float32")
    assert features["pair_id"] == datasets.Value("string")
    index = pq.read_table(pairs / "index.parquet")
    assert set(features) == set(index.column_names) | {"lr", "hr", "mask"}

    ds = ShardDataset(pairs)
    by_id = {ds.index["pair_id"][i]: i for i in range(len(ds))}
    for split in ("train", "test"):
        for row in loaded[split]:
            s = ds[by_id[row["pair_id"]]]
            assert row["split"] == split == s["split"]
            assert row["yaw"] == pytest.approx(float(s["yaw"]))
            assert np.allclose(row["landmarks"], s["landmarks"].numpy())
            for col in ("lr", "hr"):
                assert np.array_equal(np.asarray(row[col]), s[col].permute(1, 2, 0).numpy())
            assert row["mask"].mode == "L"
            assert np.array_equal(np.asarray(row["mask"]), s["mask"][0].numpy())


def test_split_files_are_numbered_within_their_split(pairs, tmp_path):
    out = tmp_path / "hf"
    export(pairs, out, "hf", split="test", columns=["lr"], progress=False)
    names = sorted(p.name for p in out.glob("*.parquet"))
    assert names == [f"test-{k:05d}-of-00004.parquet" for k in range(4)]
    t = pq.read_table(out / names[0])
    assert t.schema.field("lr").type.names == ["bytes", "path"] and "hr" not in t.column_names
