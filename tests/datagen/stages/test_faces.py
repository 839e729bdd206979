import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from datagen.core.images import ImageRejected, load_rgb
from datagen.core.shards import ShardDataset, verify
from datagen.stages.faces import build_faces, identity_of, split_identities
from tests import corpus

FACES = {"hr_size": 128, "large_size": 192}
SHARDS = {"encoding": "delta-zstd", "samples_per_shard": 4}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, bundled_photos) -> Path:
    return corpus.build(tmp_path_factory.mktemp("corpus"), bundled_photos)


@pytest.fixture(scope="module")
def built(corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("faces")
    summary = build_faces(corpus_dir, out, FACES, SHARDS, seed=0, workers=1, progress=False)
    return out, summary


def test_every_input_ends_as_its_documented_outcome(built):
    out, summary = built
    index = pl.read_parquet(out / "index.parquet")
    rejects = pl.read_parquet(out / "rejects.parquet")
    outcome = {s: "face" for s in index["source"]}
    for s, r in zip(rejects["source"], rejects["reason"], strict=True):
        assert s not in outcome, f"{s} is both a face and a reject"
        outcome[s] = r
    assert outcome == corpus.EXPECTED
    assert all(rejects["detail"].str.len_chars() > 0)
    assert summary["inputs"] == len(corpus.EXPECTED)
    assert summary["faces"] + summary["rejects"] == summary["inputs"]
    assert verify(out) == []


def test_index_has_the_contract_columns(built):
    index = pl.read_parquet(built[0] / "index.parquet")
    for col in ("face_id", "identity", "split", "source", "landmarks", "bbox", "detector_score"):
        assert col in index.columns
    assert index.schema["landmarks"] == pl.Array(pl.Float32, (68, 2))
    assert index["face_id"].is_unique().all()
    assert set(index["split"]) <= {"train", "test"}


def test_two_faces_keep_the_largest(built):
    index = pl.read_parquet(built[0] / "index.parquet")
    row = index.filter(pl.col("source") == "liam_twofaces.jpg").row(0, named=True)
    assert row["n_faces"] == 2
    x0, y0, x1, y1 = row["bbox"]
    assert x1 <= 512 and (x1 - x0) > 150  # the full-size face on the left, not the small one


def test_converted_inputs_give_the_same_face(built):
    # CMYK, alpha and EXIF-rotated copies must align like the plain RGB original of the same photo.
    out = built[0]
    index = pl.read_parquet(out / "index.parquet")
    ds = ShardDataset(out, images=["hr"])
    by_source = {s: i for i, s in enumerate(ds.index["source"])}

    def crop(src):
        return ds[by_source[src]]["hr"].permute(1, 2, 0).numpy().astype(float)

    def lm(src):
        return np.array(index.filter(pl.col("source") == src)["landmarks"].to_list()[0])

    assert np.abs(crop("nick_rotated.jpg") - crop("bob_front.png")).mean() < 6
    assert np.abs(lm("nick_rotated.jpg") - lm("bob_front.png")).max() < 3
    assert np.abs(crop("june_gray.jpg").mean(2) - crop("bob_front.png").mean(2)).mean() < 12
    cmyk, alpha = crop("hank_cmyk.jpg"), crop("mona_alpha.png")
    # Same photo c, face region: colours must agree (an inverted or dropped channel is off by 100s);
    # the pixel residual is JPEG loss plus sub-pixel differences in the landmarks.
    face = np.s_[32:96, 32:96]
    assert np.abs(cmyk[face].mean((0, 1)) - alpha[face].mean((0, 1))).max() < 4
    assert np.abs(cmyk[face] - alpha[face]).mean() < 15


def test_sixteen_bit_png_is_scaled_not_clipped(corpus_dir):
    rgb = load_rgb(corpus_dir / "ivan_16bit.png", 10**8, 32)
    raw = np.asarray(Image.open(corpus_dir / "ivan_16bit.png")).astype(np.float64)
    assert raw.max() > 255  # really 16-bit data, which a plain convert("RGB") would clip to white
    assert rgb.dtype == np.uint8 and rgb.shape == (*raw.shape, 3)
    assert np.abs(rgb[..., 0] - raw / 257.0).max() <= 0.5 + 1e-9
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_bomb_header_is_refused_before_decoding(corpus_dir):
    with pytest.raises(ImageRejected) as e:
        load_rgb(corpus_dir / "gina_bomb.png", max_pixels=100_000_000, min_side=32)
    assert e.value.reason == "too large" and "100000x100000" in e.value.detail


def test_identity_rules():
    assert identity_of("neutral_front/001_03.jpg", "prefix") == "001"
    assert identity_of("bob.jpg", "prefix") == "bob"
    assert identity_of("alice/img1.png", "parent") == "alice"
    assert identity_of("top.png", "parent") is None
    assert identity_of("celeb/000123.jpg", "regex", r"(\d+)\.jpg") == "000123"
    with pytest.raises(ValueError, match="faces.identity"):
        identity_of("a.jpg", "nickname")


def test_split_is_by_identity_exact_and_seeded():
    ids = [f"p{i:03d}" for i in range(50)]
    a = split_identities(ids, 0.2, np.random.default_rng(1))
    b = split_identities(list(reversed(ids)), 0.2, np.random.default_rng(1))
    assert a == b
    assert sum(v == "test" for v in a.values()) == 10
    c = split_identities(ids, 0.2, np.random.default_rng(2))
    assert a != c


def test_split_never_mixes_an_identity(built):
    index = pl.read_parquet(built[0] / "index.parquet")
    assert (index.group_by("identity").agg(pl.col("split").n_unique())["split"] == 1).all()


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_one_and_two_workers_give_identical_bytes(corpus_dir, built, tmp_path):
    out2 = tmp_path / "w2"
    build_faces(corpus_dir, out2, FACES, SHARDS, seed=0, workers=2, progress=False)
    one = _digest(built[0])
    assert len([n for n in one if n.startswith("shard-")]) == 4
    assert _digest(out2) == one


def test_rerun_resumes_and_params_change_rewrites(corpus_dir, built, tmp_path):
    out = tmp_path / "faces"
    build_faces(corpus_dir, out, FACES, SHARDS, seed=0, workers=1, progress=False)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    build_faces(corpus_dir, out, FACES, SHARDS, seed=0, workers=1, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")} == first  # nothing redone
    build_faces(corpus_dir, out, {**FACES, "zoom": 1.1}, SHARDS, seed=0, workers=1, progress=False)
    assert all(p.stat().st_mtime_ns != first[p.name] for p in out.glob("shard-*"))
    assert verify(out) == []
