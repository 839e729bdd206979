"""The evaluation metrics: PSNR / SSIM, identification, landmark NRMSE, speed, breakdowns."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from models.eval import metrics as M
from tests.helpers import small_faces


def _images(n: int, size: int = 32, seed: int = 0, high: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, (n, size, size, 3)).astype(np.uint8)


def _smooth(size: int) -> np.ndarray:
    """1 x size x size x 3 uint8: smooth colour waves (structure for SSIM to see)."""
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([100 + 60 * np.sin(x / 5), 120 + 50 * np.cos(y / 7), 90 + x + y], -1)
    return rgb.astype(np.uint8)[None]


# --------------------------------------------------------------------------- images, PSNR, SSIM


def test_to_uint8_rounds_and_clips():
    t = torch.tensor([-1.5, -1.0, 0.0, 1 / 127.5 - 1, 1.0, 2.0]).view(1, 3, 1, 2)
    got = M.to_uint8(t)
    assert got.dtype == np.uint8 and got.shape == (1, 1, 2, 3)
    # channel-last: pixel (0, 0) holds t[0, :, 0, 0]
    assert got[0, 0, 0].tolist() == [0, 128, 255] and got[0, 0, 1].tolist() == [0, 1, 255]
    with pytest.raises(ValueError):
        M.as_uint8_images(np.zeros((1, 4, 4, 3), np.float32))  # floats are not guessed at
    with pytest.raises(ValueError):
        M.to_uint8(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))  # nor uint8 tensors


def test_identical_images_score_the_cap_and_ssim_one():
    img = _images(2)
    r = M.psnr_ssim(img, img.copy())
    assert r["psnr"].tolist() == [M.PSNR_CAP] * 2 and r["psnr_y"].tolist() == [M.PSNR_CAP] * 2
    assert np.allclose(r["ssim"], 1.0) and np.allclose(r["ssim_y"], 1.0)
    # the cap touches identical images only: one level off in one value stays below it
    off = img.copy()
    off[0, 3, 4, 1] += 1
    r = M.psnr_ssim(off, img)
    assert 60 < r["psnr"][0] < M.PSNR_CAP and r["psnr"][1] == M.PSNR_CAP


def test_constant_offset_gives_the_closed_form_psnr():
    img = _images(3, high=200)  # + 7 stays within 0..255: no clipping
    for offset in (1, 7):
        r = M.psnr_ssim(img + np.uint8(offset), img)
        assert np.allclose(r["psnr"], 20 * math.log10(255 / offset), rtol=0, atol=1e-9)
        # Y moves by offset * (65.481 + 128.553 + 24.966) / 255 = offset * 219 / 255
        dy = offset * 219 / 255
        assert np.allclose(r["psnr_y"], 20 * math.log10(255 / dy), rtol=0, atol=1e-9)
        assert np.all(r["ssim"] < 1) and np.all(r["ssim_y"] < 1)


def test_luma_is_bt601_studio_swing():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], np.uint8)
    want = 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    assert np.allclose(M.luma(rgb), want, atol=1e-9)
    assert np.allclose(M.luma(rgb)[0, :2], [16, 235])


def test_noise_lowers_ssim_and_psnr_in_order():
    rng = np.random.default_rng(1)
    clean = _smooth(64)
    noisy = [
        np.clip(clean + rng.normal(0, s, clean.shape), 0, 255).astype(np.uint8) for s in (3, 20)
    ]
    weak, strong = (M.psnr_ssim(n, clean) for n in noisy)
    assert 1 > weak["ssim"][0] > strong["ssim"][0] and 1 > weak["ssim_y"][0] > strong["ssim_y"][0]
    assert weak["psnr"][0] > strong["psnr"][0] and weak["psnr_y"][0] > strong["psnr_y"][0]


def test_ssim_uses_the_documented_wang_settings():
    from skimage.metrics import structural_similarity

    clean = _smooth(48)
    noisy = np.clip(clean + np.random.default_rng(3).normal(0, 15, clean.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    r = M.psnr_ssim(noisy, clean)
    wang = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    want = structural_similarity(clean[0], noisy[0], data_range=255, channel_axis=-1, **wang)
    assert r["ssim"][0] == pytest.approx(want, abs=1e-12)
    y_c, y_n = M.luma(clean[0]), M.luma(noisy[0])
    assert r["ssim_y"][0] == pytest.approx(structural_similarity(y_c, y_n, data_range=255, **wang))
    default = structural_similarity(clean[0], noisy[0], data_range=255, channel_axis=-1)
    assert abs(r["ssim"][0] - default) > 0.02  # skimage's 7 x 7 uniform default differs


def test_crop_and_tensor_inputs():
    img = _images(1, size=40)
    edged = img.copy()
    edged[:, :2] = 0  # differs only in a 2 px top border
    assert M.psnr_ssim(edged, img)["psnr"][0] < 40
    assert M.psnr_ssim(edged, img, crop=2)["psnr"][0] == M.PSNR_CAP
    t = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert M.psnr_ssim(t, img)["psnr"][0] == M.PSNR_CAP  # a [-1, 1] tensor round-trips
    with pytest.raises(ValueError):
        M.psnr_ssim(img, img[:, :20])


# --------------------------------------------------------------------------- identification


def test_hole_mae_counts_only_the_hole():
    target = _images(2, 16, seed=1)
    out = target.copy()
    holes = np.zeros((2, 16, 16), bool)
    holes[0, 4:8, 4:8] = True  # 16 hole pixels in image 0, none in image 1
    out[0, 4:8, 4:8] = np.clip(target[0, 4:8, 4:8].astype(int) + 51, 0, 255)  # +0.2 inside
    out[:, 12:, 12:] = 0  # errors outside the hole do not count
    mae = M.hole_mae(out, target, holes)
    expected = np.abs(out[0, 4:8, 4:8].astype(int) - target[0, 4:8, 4:8]).mean() / 255
    assert mae[0] == pytest.approx(expected) and 0.15 < mae[0] <= 0.2 and np.isnan(mae[1])
    assert M.hole_mae(target, target, holes)[0] == 0
    with pytest.raises(ValueError, match="do not match"):
        M.hole_mae(out, target, holes[:, :8])


def test_ranks_on_a_toy_gallery():
    gallery = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    g_ids = ["a", "b", "c"]
    probes = np.array([[1.0, 0.0], [9.0, 1.0], [6.0, 0.0], [0.0, 6.0]])
    p_ids = ["a", "b", "a", "b"]
    ranks = M.identification_ranks(probes, p_ids, gallery, g_ids)
    # probe 2 is 6 from a and 4 from b: rank 2; probe 3 is 6 from c, 6 from a (tie), 11.7 from b
    assert ranks.tolist() == [1, 1, 2, 3]
    assert M.rank_k(probes, p_ids, gallery, g_ids, 1).tolist() == [True, True, False, False]
    assert M.rank_k(probes, p_ids, gallery, g_ids, 2).tolist() == [True, True, True, False]


def test_ties_count_against_the_probe_whatever_the_gallery_order():
    gallery = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0]])
    probe = np.zeros((1, 2))  # exactly 1 from a and from b
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0]):
        ids = [["a", "b", "c"][i] for i in order]
        assert M.identification_ranks(probe, ["a"], gallery[order], ids).tolist() == [2]
        assert M.identification_ranks(probe, ["b"], gallery[order], ids).tolist() == [2]
    # the same descriptor for every probe is no free rank-1
    assert M.rank_k(np.zeros((2, 2)), ["a", "b"], gallery, ["a", "b", "c"], 1).sum() == 0
    with pytest.raises(ValueError, match="no gallery face"):
        M.identification_ranks(probe, ["z"], gallery, ["a", "b", "c"])


def test_gallery_rule_picks_the_other_photo_when_there_is_one():
    face_ids = ["a-2", "a-1", "b-1", "c-1", "c-2"]
    ids = ["a", "a", "b", "c", "c"]
    images = np.arange(5)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    imgs, g_ids, g_faces = M.build_gallery(face_ids, ids, images, [])
    assert g_ids == ["a", "b", "c"] and g_faces == ["a-1", "b-1", "c-1"]  # first by face id
    assert imgs[:, 0, 0, 0].tolist() == [1, 2, 3]
    _, _, g_faces = M.build_gallery(face_ids, ids, images, ["a-1", "c-2"])
    assert g_faces == ["a-2", "b-1", "c-1"]  # the other photo
    _, _, g_faces = M.build_gallery(face_ids, ids, images, ["a-1", "a-2", "b-1"])
    assert g_faces == ["a-1", "b-1", "c-1"]  # no other photo: the same face
    t = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert M.build_gallery(face_ids, ids, t, ["a-1"])[0][:, 0, 0, 0].tolist() == [0, 2, 3]


def test_per_probe_gallery_uses_the_persons_other_photo():
    # every clean face is in the pool; a probe that copies its own source face exactly must be
    # ranked against the person's other photo, not against itself
    pool = np.array([[0.0, 0.0], [4.0, 0.0], [3.0, 3.0]])
    pool_faces, pool_ids = ["a-1", "a-2", "b-1"], ["a", "a", "b"]
    probes = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 3.0]])
    sources, p_ids = ["a-1", "a-2", "b-1"], ["a", "a", "b"]
    ranks = M.identification_ranks(probes, p_ids, pool, pool_ids, sources, pool_faces)
    # probe 0 (source a-1) sees a-2 at 4 and b at 4.24: rank 1; probe 1 (source a-2) sees
    # a-1 at 0: rank 1; probe 2 (b, no other photo) sees b-1 at 0 and a-1 (first a) at 4.24
    assert ranks.tolist() == [1, 1, 1]
    far = np.array([[0.0, 0.0], [9.0, 0.0], [3.0, 3.0]])  # a-2 now farther than b
    ranks = M.identification_ranks(probes[:1], ["a"], far, pool_ids, ["a-1"], pool_faces)
    assert ranks.tolist() == [2]
    # without face ids the nearest entry of each identity counts: a-1 itself, rank 1
    assert M.identification_ranks(probes[:1], ["a"], far, pool_ids).tolist() == [1]


def test_identity_metrics_with_a_stand_in_descriptor():
    def mean_colour(x: torch.Tensor) -> torch.Tensor:  # B x 3 x S x S -> B x 3
        return x.mean((2, 3))

    colours = np.array([[200, 20, 20], [20, 200, 20], [20, 20, 200]], np.uint8)
    gallery = np.broadcast_to(colours[:, None, None], (3, 8, 8, 3)).copy()
    targets = gallery[[0, 1, 2, 0]]
    outputs = targets.copy()
    outputs[3] = gallery[2]  # the last output turned into person c
    r = M.identity_metrics(outputs, targets, ["a", "b", "c", "a"], gallery, ["a", "b", "c"],
                           mean_colour)  # fmt: skip
    assert r["identity_distance"][:3].tolist() == [0, 0, 0] and r["identity_distance"][3] > 1
    assert r["rank1"].tolist() == [1, 1, 1, 0] and r["rank5"].tolist() == [1, 1, 1, 1]


# --------------------------------------------------------------------------- real faces


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Aligned 128 px crops (N x 128 x 128 x 3 uint8) of three bundled people, two photos each,
    with their landmarks (N x 68 x 2), identities and face ids."""
    from datagen.core.shards import ShardDataset

    root = small_faces(tmp_path_factory, ("001", "002", "003"), 0.0, {"samples_per_shard": 16})
    ds = ShardDataset(root, images=["hr"])
    rows = [ds[i] for i in range(len(ds))]
    hr = np.stack([r["hr"].permute(1, 2, 0).numpy() for r in rows])
    lm = np.stack([np.asarray(r["landmarks"], np.float64) for r in rows])
    return hr, lm, [r["identity"] for r in rows], [r["face_id"] for r in rows]


def test_landmarks_of_aligned_faces_match_their_own(faces):
    hr, lm, _, _ = faces
    r = M.landmark_metrics(hr, lm)
    assert r["landmark_detection_rate"].tolist() == [1.0] * len(hr)
    assert np.all(r["landmark_nrmse"] < 0.05), r["landmark_nrmse"]  # 0.012 mean on all 204
    shifted = M.landmark_metrics(hr, lm + np.array([6.0, 0.0]))  # targets moved by 6 px
    assert np.all(shifted["landmark_nrmse"] > 0.1)  # eye corners ~53 px apart


def test_a_blank_image_is_a_miss_and_skipped(faces):
    hr, lm, _, _ = faces
    imgs = hr[:2].copy()
    imgs[1] = 128
    r = M.landmark_metrics(imgs, lm[:2])
    assert r["landmark_detection_rate"].tolist() == [1.0, 0.0]
    assert r["landmark_nrmse"][0] < 0.05 and math.isnan(r["landmark_nrmse"][1])
    s = M.summarise(r)["overall"]
    assert s["landmark_detection_rate"] == 0.5 and s["landmark_nrmse"] == r["landmark_nrmse"][0]


def test_landmark_nrmse_formula():
    target = np.zeros((68, 2))
    target[45] = [50.0, 0.0]  # outer eye corners 50 px apart
    pred = target.copy()
    pred[:, 1] += 5.0
    assert M.landmark_nrmse(pred, target) == pytest.approx(0.1)
    assert M.landmark_nrmse(pred[None], target[None]).shape == (1,)


def test_identity_metrics_on_real_faces(faces, tmp_path):
    from models.archs.identity import identity_network
    from models.losses.identity import IdentityLoss

    hr, _, ids, face_ids = faces
    loss = IdentityLoss(identity_network(cache=tmp_path / "id.safetensors"))
    # outputs equal to their targets, ranked against the person's other photo
    r = M.identity_metrics(hr, hr, ids, hr, ids, loss, source_face_ids=face_ids,
                           gallery_face_ids=face_ids)  # fmt: skip
    assert np.allclose(r["identity_distance"], 0) and r["rank1"].tolist() == [1.0] * len(hr)
    # outputs of the wrong person: output i shows the next identity's face
    order = np.argsort(ids, kind="stable")
    wrong = hr[np.roll(order, 2)][np.argsort(order)]
    r = M.identity_metrics(wrong, hr, ids, hr, ids, loss, source_face_ids=face_ids,
                           gallery_face_ids=face_ids)  # fmt: skip
    assert np.all(r["identity_distance"] > 0.6) and r["rank1"].sum() == 0
    assert r["rank5"].tolist() == [1.0] * len(hr)  # only three identities


# --------------------------------------------------------------------------- speed, summaries


def test_speed_and_parameter_count():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    assert M.parameter_count(net) == 3 * 4 * 9 + 4 + 4 * 2 + 2
    net[1].requires_grad_(False)
    assert M.parameter_count(net, trainable_only=True) == 3 * 4 * 9 + 4
    seen = []

    def model_fn(x: torch.Tensor) -> torch.Tensor:
        seen.append((x.shape[0], torch.is_grad_enabled()))
        return net(x)

    r = M.speed(model_fn, torch.zeros(1, 3, 16, 16), batch_sizes=(1, 4), repeats=3, warmup=1)
    assert set(r["ms_per_image"]) == {"1", "4"} and all(v > 0 for v in r["ms_per_image"].values())
    assert seen == [(1, False)] * 4 + [(4, False)] * 4 and r["device"] == "cpu"
    json.dumps(r)


def test_summarise_groups_and_is_json():
    per_image = {
        "psnr": np.array([20.0, 30.0, 40.0, 50.0]),
        "rank1": np.array([1, 0, 1, 1], bool),
        "landmark_nrmse": np.array([0.1, np.nan, 0.3, np.nan]),
    }
    groups = {
        "yaw": np.array([-40.0, 0.0, -40.0, 22.5], np.float32),
        "mask_kind": ["square", "irregular", "square", "square"],
        "square_side": [16, None, 32, float("nan")],
    }
    s = M.summarise(per_image, groups)
    assert s["overall"] == {"n": 4, "psnr": 35.0, "rank1": 0.75, "landmark_nrmse": 0.2}
    assert list(s["by_yaw"]) == ["-40", "0", "22.5"]  # numeric order, JSON keys
    assert s["by_yaw"]["-40"] == {"n": 2, "psnr": 30.0, "rank1": 1.0, "landmark_nrmse": 0.2}
    assert s["by_yaw"]["0"] == {"n": 1, "psnr": 30.0, "rank1": 0.0, "landmark_nrmse": None}
    assert list(s["by_mask_kind"]) == ["irregular", "square"]
    assert s["by_mask_kind"]["square"]["n"] == 3 and s["by_mask_kind"]["square"]["psnr"] == 110 / 3
    assert list(s["by_square_side"]) == ["16", "32"]  # None and NaN labels are in no group
    assert s["by_square_side"]["32"]["psnr"] == 40.0
    assert all(type(v) in (int, float) for v in s["by_yaw"]["-40"].values())
    json.loads(json.dumps(s, allow_nan=False))
    with pytest.raises(ValueError):
        M.summarise(per_image, {"yaw": [0.0, 1.0]})
