import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datagen import rain
from datagen.core.images import write_png
from datagen.reports import rain_quality as rq
from tests.helpers import bundled_faces, small_faces, small_fits

SHARDS = {"samples_per_shard": 16}


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    # four people, two of them held out: four test faces (two per person)
    return small_faces(tmp_path_factory, ("001", "002", "003", "004"), 0.5, SHARDS)


@pytest.fixture(scope="module")
def fits_dir(faces_dir, tmp_path_factory) -> Path:
    return small_fits(tmp_path_factory, faces_dir, SHARDS)


@pytest.fixture(scope="module")
def encoder():
    from models.archs.vgg import Encoder

    return Encoder()


def ramp(image: np.ndarray, lo: float, hi: float, axis: int) -> np.ndarray:
    """``image`` multiplied by a linear ramp from ``lo`` to ``hi`` along ``axis`` (0: down the
    rows, 1: left to right)."""
    r = np.linspace(lo, hi, image.shape[axis])
    r = r[:, None, None] if axis == 0 else r[None, :, None]
    return np.clip(image * r, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory) -> Path:
    """A stand-in for Yale B: grey, darkened, side-lit bundled faces of two 'subjects'."""
    root = tmp_path_factory.mktemp("real")
    for i, f in enumerate(bundled_faces(8, 80)):
        grey = np.repeat(rq.luminance(f)[..., None] * 255, 3, axis=2)
        lo, hi = (0.1, 0.8) if i % 2 else (0.8, 0.1)
        write_png(root / f"subject{i % 2}" / f"{i}.png", ramp(grey, lo, hi, 1))
    return root


def test_early_features_are_the_encoders_first_layers(encoder):
    x = torch.rand(2, 3, 32, 32)
    got, want = encoder(x, layers=2), encoder(x)[:2]
    assert len(got) == 2 and all(torch.allclose(a, b) for a, b in zip(got, want, strict=True))


def test_frechet_is_zero_for_the_same_set_and_grows_with_darkening(encoder):
    faces = bundled_faces(12, 64)
    lum = rq.luminance(faces)
    feats = rq.style_features(encoder, lum, progress=False)
    assert feats.shape == (12, 384)
    pca = rq.fit_pca(feats, 4)
    assert 0 < pca.explained <= 1
    same = pca.project(feats)
    assert rq.frechet_distance(same, same) < 1e-6
    d = [
        rq.frechet_distance(pca.project(rq.style_features(encoder, lum * g, progress=False)), same)
        for g in (0.9, 0.6, 0.3)
    ]
    assert d[0] > 0.1 and d[0] < d[1] < d[2]


def test_frechet_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 2))
    b = rng.standard_normal((20000, 2)) * 2 + [3, 0]
    # |mu|^2 + tr(I + 4I - 2 * 2I) = 9 + 2
    assert rq.frechet_distance(a, b) == pytest.approx(11, rel=0.03)
    assert np.isnan(rq.frechet_distance(a[:1], b))


def test_histogram_distance_is_the_shift_in_grey_levels():
    rng = np.random.default_rng(0)
    lum = rng.uniform(0.1, 0.8, (3, 16, 16))
    shifted = lum + 10 / 255
    assert rq.histogram(lum).sum() == lum.size
    assert rq.histogram_w1(rq.histogram(lum), rq.histogram(shifted)) == pytest.approx(10, abs=0.01)


def test_asymmetry_reads_the_light_direction():
    face = bundled_faces(1, 64)[0]
    lum = rq.luminance(
        np.stack([face, ramp(face, 0.2, 1, 1), ramp(face, 1, 0.2, 1), ramp(face, 1, 0.2, 0)])
    )
    lr, tb = rq.asymmetry(lum)
    assert lr[1] > lr[0] + 0.1 and lr[2] < lr[0] - 0.1  # lit from the image's right, left
    assert tb[3] > tb[0] + 0.1  # lit from above
    lr, tb = rq.asymmetry(rq.luminance(np.full((1, 8, 8, 3), 128, np.uint8)))
    assert lr[0] == pytest.approx(0) and tb[0] == pytest.approx(0)


def test_naive_baseline_is_deterministic_per_seed_and_face():
    faces = [
        rq.HeldOutFace(f"f{i}", f"p{i}", im, np.zeros((68, 2)))
        for i, im in enumerate(bundled_faces(3, 32))
    ]
    a = rq.naive_set(faces, 3, seed=1)
    assert all(
        np.array_equal(x, y) for x, y in zip(a[0], rq.naive_set(faces, 3, 1)[0], strict=True)
    )
    # the face's position in the list (--limit) does not matter, the seed does
    assert all(
        np.array_equal(x, y) for x, y in zip(a[2], rq.naive_set(faces[2:], 3, 1)[0], strict=True)
    )
    assert not np.array_equal(a[0][0], rq.naive_set(faces, 3, seed=2)[0][0])
    assert len({x.tobytes() for x in a[0]}) == 3
    _, p = rq.naive_relight(faces[0].image, np.random.default_rng(0))
    assert rq.NAIVE_GAMMA[0] <= p["gamma"] <= rq.NAIVE_GAMMA[1]
    assert rq.NAIVE_GAIN[0] <= p["gain"] <= rq.NAIVE_GAIN[1]


def test_diversity_of_identical_samples_is_zero_and_of_different_ones_is_not():
    lum = np.random.default_rng(0).uniform(0, 1, (4, 16, 16))
    same = (np.zeros((3, 2)), np.repeat(lum[:1], 3, axis=0))
    d = rq.diversity([same])
    assert d["feature_distance"] == 0 and d["pixel_std"] == pytest.approx(0, abs=1e-9)
    # triangle 3-4-5: mean pairwise distance 4
    d = rq.diversity([(np.array([[0.0, 0], [3, 0], [0, 4]]), lum[:3])])
    assert d["feature_distance"] == pytest.approx(4) and d["pixel_std"] > 10


def test_halves_split_by_subject():
    a, b = rq.halves(["s2", "s1", "s2", "s3", "s1"])
    groups = ["s2", "s1", "s2", "s3", "s1"]
    assert {groups[i] for i in a}.isdisjoint({groups[i] for i in b})
    assert sorted([*a, *b]) == list(range(5))
    assert [i.tolist() for i in rq.by_subject(groups)] == [[1, 4], [0, 2], [3]]


def test_speed_rates_are_positive_for_the_tiny_model(tiny_rain):
    _, model, _ = tiny_rain
    s = rq.sampling_speed(model, bundled_faces(1, 32)[0], n=2, batches=(1, 2), rounds=1)
    assert set(s["methods"]) == {"batched 1", "batched 2", "naive"}
    assert all(m["images_per_second"] > 0 for m in s["methods"].values())
    assert s["methods"]["naive"]["ratio_to_naive"] == 1


def test_end_to_end_writes_every_section(
    tiny_rain, faces_dir, fits_dir, real_dir, tmp_path, capsys
):
    folder, _, _ = tiny_rain
    out = tmp_path / "q.json"
    argv = [
        "--checkpoint", str(folder), "--faces", str(faces_dir), "--fits", str(fits_dir),
        "--real", str(real_dir), "--limit", "2", "--k", "2", "--dims", "4", "--speed",
        "--speed-size", "32", "--speed-samples", "2",
        "--speed-rounds", "1", "--grid", str(tmp_path / "grid.png"), "--json", str(out), "--markdown",
        "--no-progress",
    ]  # fmt: skip
    assert rq.main(argv) == 0
    r = json.loads(out.read_text())
    assert r["config"]["test_faces"] == 2 and r["config"]["all_test_faces"] == 4
    assert r["config"]["checkpoint_metadata"]["config"]["size"] == 64
    assert len(r["config"]["checkpoint_sha256"]) == 64
    # two faces; UI + 4 columns for each of the three sets, 64 px cells with 2 px gaps
    assert cv2.imread(str(tmp_path / "grid.png")).shape == (2 + 2 * 66, 2 + 13 * 66, 3)
    sets = r["realism"]["sets"]
    assert set(sets) == {"rain", "naive", "physical", "ui", "real_halves"}
    assert sets["rain"]["images"] == 4 and sets["ui"]["images"] == 2
    assert all(v["w1_histogram"] >= 0 and v["frechet"] >= 0 for v in sets.values())
    ident = r["identity"]
    assert {"rain", "naive", "physical", "same_person", "other_people"} <= set(ident)
    assert ident["rain"]["pairs"] == 4 and ident["rain"]["images"] == 4
    # the first two test faces are one person's: each has one other photo; four strangers each
    assert ident["same_person"]["pairs"] == 2 and ident["other_people"]["pairs"] == 4
    assert ident["same_person"]["mean"] < ident["other_people"]["mean"]
    div = r["diversity"]
    assert set(div) == {"rain", "naive", "physical", "real_subjects"}
    assert div["naive"]["faces"] == 2 and div["naive"]["pixel_std"] > 0
    assert r["speed"][0]["device"] == "cpu"
    asym = r["realism"]["asymmetry"]
    assert set(asym["sets"]) == {"rain", "naive", "physical", "ui", "real"}
    # the real pool against its own median: half over it, or a little less (ties)
    assert 0.3 <= asym["sets"]["real"]["lr_over_median"] <= 0.5
    # the stand-in's file names give no azimuth: no bins, and a note says so
    assert asym["bin_median_abs_lr"] == {} and any("azimuth" in n for n in r["notes"])
    assert r["config"]["relight"]["azimuth"] == [40.0, 95.0]  # params.yaml's
    text = capsys.readouterr().out
    for heading in ("Realism", "Side-lit shares", "Identity", "Diversity", "Speed", "| RaIN |"):
        assert heading in text


def test_without_fits_the_physical_set_is_left_out(
    tiny_rain, faces_dir, real_dir, tmp_path, capsys
):
    folder, _, _ = tiny_rain
    out = tmp_path / "q.json"
    argv = [
        "--checkpoint", str(folder), "--faces", str(faces_dir), "--fits", str(tmp_path / "none"),
        "--real", str(real_dir), "--limit", "1", "--k", "2", "--dims", "2", "--json", str(out),
        "--no-progress",
    ]  # fmt: skip
    assert rq.main(argv) == 0
    r = json.loads(out.read_text())
    assert "physical" not in r["realism"]["sets"] and "physical" not in r["identity"]
    assert any("physical" in n for n in r["notes"]) and "speed" not in r
    assert "physical set is left out" in capsys.readouterr().out


def test_clear_errors(tiny_rain, faces_dir, tmp_path, capsys):
    folder, _, _ = tiny_rain
    assert rq.main(["--checkpoint", str(folder), "--real", str(tmp_path / "no")]) == 2
    assert "Yale B" in capsys.readouterr().err
    argv = ["--checkpoint", str(tmp_path), "--faces", str(faces_dir), "--real", str(tmp_path)]
    assert rq.main(argv) == 2
    assert "no RaIN checkpoint" in capsys.readouterr().err
    assert rain.CHECKPOINT == "rain.safetensors"


def test_side_lit_shares_overall_and_per_yale_azimuth_bin():
    real_lr = np.array([0.0, 0.05, -0.1, 0.3, -0.5, 0.8, -0.7, 0.9])
    names = [
        "s_P00A+000E+00.png", "s_P00A-010E+00.png", "s_P00A+015E+20.png", "s_P00A-035E+00.png",
        "s_P00A+050E+00.png", "s_P00A-070E+00.png", "s_P00A+110E+15.png", "s_P00A-130E+20.png",
    ]  # fmt: skip
    from models.eval import yale

    bins = [yale.azimuth_bin(yale.parse_name(n).azimuth) for n in names]

    def measured(lr, tb):
        lr, tb = np.asarray(lr, float), np.asarray(tb, float)
        return rq.Measured(np.zeros((len(lr), 2)), np.zeros(256), lr, tb, 0.0)

    real = measured(real_lr, np.linspace(-0.2, 0.2, 8))
    flat = measured([0.01, -0.02, 0.0, 0.03], [0.0] * 4)
    side = measured([0.6, -0.9, 0.75, -0.5], [0.3] * 4)
    a = rq.asymmetry_section({"flat": flat, "side": side}, real, bins)
    assert a["real_median_abs_lr"] == pytest.approx(0.4)
    assert list(a["bin_median_abs_lr"]) == ["0-20", "20-50", "50-85", "85-130"]
    assert a["bin_median_abs_lr"]["0-20"] == pytest.approx(0.05)
    assert a["bin_median_abs_lr"]["85-130"] == pytest.approx(0.8)
    assert a["sets"]["flat"]["lr_over_median"] == 0 and a["sets"]["side"]["lr_over_median"] == 1
    assert a["sets"]["side"]["tb_over_median"] == 1
    assert a["sets"]["side"]["lr_over_bin_median"]["85-130"] == 0.25  # only -0.9 is over 0.8
    assert a["sets"]["flat"]["lr_over_bin_median"]["0-20"] == 0  # none over 0.05
    assert a["bin_images"] == {"0-20": 3, "20-50": 1, "50-85": 2, "85-130": 2}
    table = rq.asymmetry_table(a, markdown=True)
    assert "(az 85-130)" in table and "| side | 4 | 100 |" in table


def test_relight_overrides_are_read_over_params_yaml(tmp_path):
    from datagen.face3d.relight import RelightParams

    params = tmp_path / "params.yaml"
    params.write_text("relight:\n  azimuth: [10, 20]\n  tint: 0.0\n")
    p = rq.relight_params(params, "{tint: 0.2, ambient: [0.1, 0.2], ambient_scale: linear}")
    assert p.azimuth == (10, 20) and p.tint == 0.2 and p.ambient == (0.1, 0.2)
    assert rq.relight_params(tmp_path / "none.yaml", "") == RelightParams()
    with pytest.raises(ValueError, match="YAML mapping"):
        rq.relight_params(params, "[1, 2]")
    with pytest.raises(KeyError, match="unknown key"):
        rq.relight_params(params, "{azimut: 3}")


def test_rain_latents_are_drawn_per_face_and_replay():
    a = rq.face_latents("001-a", 10, 0, 8)
    assert a.shape == (10, 8) and torch.equal(a, rq.face_latents("001-a", 10, 0, 8))
    assert not torch.equal(a, rq.face_latents("002-b", 10, 0, 8))
    assert not torch.equal(a, rq.face_latents("001-a", 10, 1, 8))
    # over many faces the draws are N(0, I): no face set shares one lumpy handful of lights
    z = torch.cat([rq.face_latents(f"{i:03d}", 10, 0, 8) for i in range(100)])
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05
