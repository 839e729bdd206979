import json

import cv2
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from datagen.core.shards import ShardDataset
from datagen.export.run import export
from tests.datagen.export.conftest import write_pairs


def read_png(path):
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert a is not None, path
    return a[..., ::-1] if a.ndim == 3 else a


@pytest.mark.parametrize("encoding", ["delta-zstd", "png"])
def test_every_png_is_the_shards_pixels_and_names_match(tmp_path, encoding):
    src = write_pairs(tmp_path / "pairs", encoding)
    out = tmp_path / "out"
    report = export(src, out, "folders", progress=False)
    assert report.rows == report.written == 30 and report.per_split == {"test": 8, "train": 22}
    ds = ShardDataset(src)
    for i in range(len(ds)):
        s = ds[i]
        for col in ("lr", "hr", "mask"):
            got = read_png(out / s["split"] / col / f"{s['pair_id']}.png")
            want = s[col].permute(1, 2, 0).numpy()
            assert np.array_equal(got, want[..., 0] if col == "mask" else want), (i, col)
    for split in ("train", "test"):
        names = [sorted(p.name for p in (out / split / c).iterdir()) for c in ("lr", "hr", "mask")]
        assert names[0] == names[1] == names[2] and len(names[0]) == report.per_split[split]


def test_meta_rows_equal_the_index_rows_and_csv_is_their_twin(pairs, tmp_path):
    out = tmp_path / "out"
    export(pairs, out, "folders", split="train", columns=["lr", "hr"], progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "train"]
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "hr",
        "lr",
        "meta.csv",
        "meta.parquet",
    ]
    index = pq.read_table(pairs / "index.parquet").replace_schema_metadata(None)
    train = index.filter(pl.from_arrow(index)["split"].to_numpy() == "train")
    meta = pq.read_table(out / "train" / "meta.parquet").replace_schema_metadata(None)
    assert meta.schema == train.schema and meta.equals(train)
    csv = pl.read_csv(out / "train" / "meta.csv")
    assert (
        csv.columns == meta.column_names and csv["pair_id"].to_list() == meta["pair_id"].to_pylist()
    )
    lm = [json.loads(v) for v in csv["landmarks"]]
    assert np.allclose(lm, np.asarray(meta["landmarks"].to_pylist()))
    names = {p.stem for p in (out / "train" / "lr").iterdir()}
    assert names == set(meta["pair_id"].to_pylist())


def test_a_faces_dataset_is_named_by_face_id(tmp_path):
    import pyarrow as pa

    from datagen.core.shards import DatasetSpec, ImageSpec, ItemResult, write_dataset

    def face(i):
        rng = np.random.default_rng(i)
        img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        return ItemResult(samples=[{"face_id": f"{i:03d}-f", "split": "train", "hr": img}])

    src = tmp_path / "faces"
    spec = DatasetSpec({"hr": ImageSpec((8, 8, 3))}, {"face_id": pa.string(), "split": pa.string()})
    write_dataset(
        src,
        spec,
        [0, 1, 2],
        face,
        code_module="datagen.export",
        item_keys=[0, 1, 2],
        params_fingerprint="t",
        items_per_shard=2,
        workers=1,
        progress=False,
    )
    export(src, tmp_path / "out", "folders", progress=False)
    assert sorted(p.name for p in (tmp_path / "out" / "train" / "hr").iterdir()) == [
        "000-f.png",
        "001-f.png",
        "002-f.png",
    ]
