import numpy as np
import pyarrow.parquet as pq
import pytest

from datagen.export.selection import ExportError, parse_filter, select


def test_default_selection_is_every_row_and_image_column_in_shard_chunks(pairs):
    sel = select(pairs)
    index = pq.read_table(pairs / "index.parquet")
    assert sel.index.num_rows == index.num_rows == 30
    assert list(sel.images) == ["lr", "hr", "mask"] and sel.id_column == "pair_id"
    assert sel.splits == ["test", "train"]
    # one chunk per (split, shard): 4 shards, each holding rows of both splits
    assert len(sel.chunks) == 8 and len({c.name for c in sel.chunks}) == 8
    covered = np.sort(np.concatenate([c.rows for c in sel.chunks]))
    assert np.array_equal(covered, np.arange(30))
    for c in sel.chunks:
        rows = sel.index.take(c.rows)
        assert set(rows.column("split").to_pylist()) == {c.split}
        assert set(rows.column("shard").to_pylist()) == {c.shard}
        assert rows.column("row").to_pylist() == c.source_rows.tolist()


def test_split_and_filters_sql_and_python_agree(pairs):
    test = select(pairs, split="test")
    assert set(test.index.column("split").to_pylist()) == {"test"} and test.splits == ["test"]
    sql = select(pairs, filter="abs(yaw) >= 40 AND mask_kind = 'square'")
    py = select(pairs, filter='(pl.col("yaw").abs() >= 40) & (pl.col("mask_kind") == "square")')
    ids = sql.index.column("pair_id").to_pylist()
    assert ids == py.index.column("pair_id").to_pylist() and 0 < len(ids) < 30
    yaws = np.abs(np.asarray(sql.index.column("yaw").to_pylist()))
    assert (yaws >= 40).all()


def test_not_a_dataset_is_named(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        select(tmp_path / "nowhere")
    (tmp_path / "photos").mkdir()
    with pytest.raises(ExportError, match=r"photos is not a facepairs shard dataset: .*index"):
        select(tmp_path / "photos")
    (tmp_path / "photos" / "index.parquet").write_bytes(b"not parquet")
    with pytest.raises(ExportError, match="not readable as Parquet"):
        select(tmp_path / "photos")


def test_unknown_and_index_columns_are_named(pairs):
    with pytest.raises(ExportError, match=r"unknown column 'guide'.*lr, hr, mask"):
        select(pairs, columns=["lr", "guide"])
    with pytest.raises(ExportError, match=r"'yaw' is an index column"):
        select(pairs, columns=["yaw"])


def test_filter_errors_name_the_filter(pairs):
    with pytest.raises(ExportError, match=r"matches none of the 30 rows"):
        select(pairs, filter="yaw > 1000")
    with pytest.raises(ExportError, match=r"matches none of the \d+ rows .*split test"):
        select(pairs, split="test", filter="yaw > 1000")
    with pytest.raises(
        ExportError, match=r"names a column the index lacks.*index columns: pair_id"
    ):
        select(pairs, filter="hole_ratio > 0.1")
    with pytest.raises(ExportError, match="not a polars expression"):
        parse_filter("pl.col('yaw') >")


def test_missing_shard_is_named(pairs, tmp_path):
    import shutil

    copy = tmp_path / "pairs"
    shutil.copytree(pairs, copy)
    (copy / "shard-00002.parquet").unlink()
    with pytest.raises(ExportError, match=r"missing: \['shard-00002.parquet'\]"):
        select(copy)
