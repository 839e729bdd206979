"""Pro-UInet: the shape of every module and of each block's outputs, CMAM against Eq. 1-2
computed directly, each ablation switch (P-FP, one block), the landmark estimator and a tiny
generator learning, and the configs the network refuses."""

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from models.archs.components import heatmap_landmarks
from models.archs.prouigan import (
    CMAM,
    TUM,
    LandmarkEstimator,
    LandmarkEstimatorConfig,
    ProUIGANConfig,
    ProUINet,
    ResidualFusion,
    UIBlock,
    cross_modality_matrix,
)
from models.losses.heatmap import gaussian_heatmaps

TINY = ProUIGANConfig(widths=(8, 8, 8, 4), encoder_blocks=1, res_blocks=1, hourglass_width=8)
TINY_ESTIMATOR = LandmarkEstimatorConfig(width=16, stacks=1, heatmap_size=16)


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors this small gain nothing from threads, and on a machine whose cores are busy
    (a training run beside the tests) threads waiting on one another make the training tests
    minutes long instead of seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_module_has_its_shape():
    f = torch.randn(2, 8, 16, 16)
    f_p, f_a = CMAM(8)(f, torch.randn(2, 8, 16, 16))
    assert f_p.shape == f_a.shape == (2, 8, 16, 16)
    assert TUM(8, [6], 1)(f_p, f_a).shape == (2, 6, 32, 32)
    assert TUM(8, [6, 5, 4], 1)(f_p, f_a).shape == (2, 4, 128, 128)  # x8: three deconvolutions
    r = UIBlock(TINY, 8, [8], 32)(f, torch.rand(2, 68, 32, 32))  # heatmaps of any size
    assert r["image"].shape == (2, 3, 32, 32) and r["features"].shape == (2, 8, 32, 32)
    assert r["heatmaps"].shape == (2, 68, 32, 32) and len(r["heatmap_stacks"]) == 1
    assert r["image"].abs().max() <= 1  # tanh

    g = ProUINet(TINY)
    lr = torch.rand(2, 3, 16, 16) * 2 - 1
    for maps in (torch.rand(2, 68, 16, 16), torch.rand(2, 68, 32, 32)):  # estimator at 16 or 32
        out = g(lr, maps)
        assert [t.shape[-1] for t in out["images"]] == [32, 64, 128]
        assert all(t.shape[:2] == (2, 3) for t in out["images"])
        # heatmaps at each block's size, at most heatmap_max (64)
        assert [tuple(t.shape) for t in out["heatmaps"]] == [(2, 68, s, s) for s in (32, 64, 64)]
        assert out["output"] is out["images"][-1]
    assert torch.equal(g.hallucinate(lr, maps), out["output"])
    full = ProUINet(replace(TINY, heatmap_max=128))(lr, maps)
    assert [t.shape[-1] for t in full["heatmaps"]] == [32, 64, 128]
    first = g(lr, maps, upto=1)  # pre-training block 1
    assert len(first["images"]) == 1 and first["output"].shape == (2, 3, 32, 32)
    assert ProUINet(TINY, lr_size=8)(lr[..., :8, :8], maps)["output"].shape == (2, 3, 64, 64)

    for size in (16, 32):
        est = LandmarkEstimator(replace(TINY_ESTIMATOR, stacks=2, heatmap_size=size))
        assert [t.shape for t in est(lr)] == [(2, 68, size, size)] * 2  # one per stack


def test_cross_modality_matrix_is_eq_1():
    torch.manual_seed(0)
    q, k = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    cm = cross_modality_matrix(q, k)
    assert cm.shape == (2, 12, 12)
    for b in range(2):
        for i in range(12):
            qi = q[b, :, i // 4, i % 4]
            for j in range(12):
                kj = k[b, :, j // 4, j % 4]
                want = torch.dot(qi, kj) / (qi.norm() * kj.norm())
                assert torch.isclose(cm[b, i, j], want, atol=1e-6)
    assert torch.allclose(cross_modality_matrix(q, q).diagonal(dim1=1, dim2=2), torch.ones(2, 12))


def test_cmam_is_eq_2_with_its_own_convolutions():
    torch.manual_seed(0)
    m = CMAM(4, temperature=0.3)
    f_l, f_c = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    f_p, f_a = m(f_l, f_c)
    v_c = m.face_values(f_c).flatten(2)  # [Conv(Conv(F_C))]^R, B x C x N
    v_l = m.landmark_values(f_l).flatten(2)
    ql, kc = f_l.flatten(2), f_c.flatten(2)
    cos = torch.einsum("bci,bcj->bij", ql, kc) / (
        ql.norm(dim=1)[:, :, None] * kc.norm(dim=1)[:, None, :]
    )  # Eq. 1: CM[b, landmark position i, face position j]
    e = torch.exp(cos / 0.3)
    # F_P at landmark position i: face values weighted over face positions j (rows sum to 1)
    want_p = torch.einsum("bcj,bij->bci", v_c, e / e.sum(2, keepdim=True)).view_as(f_l) + f_l
    # F_A at face position j: landmark values weighted over landmark positions i
    want_a = torch.einsum("bci,bij->bcj", v_l, e / e.sum(1, keepdim=True)).view_as(f_c) + f_c
    assert torch.allclose(f_p, want_p, atol=1e-5) and torch.allclose(f_a, want_a, atol=1e-5)
    cm, a_p, a_a = m.attention(f_l, f_c)
    assert torch.allclose(cm, cos, atol=1e-6)
    ones = torch.ones(2, 30)
    assert torch.allclose(a_p.sum(2), ones) and torch.allclose(a_a.sum(1), ones)

    # maps no larger than cm_size take the paper's path exactly; larger ones are pooled
    small = CMAM(4, cm_size=8, temperature=0.3)
    small.load_state_dict(m.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(small(f_l, f_c), (f_p, f_a), strict=True))
    # pooled: Eq. 2's aggregates on the 4 x 4 area means, upsampled; the residuals at 16 x 16
    big_l, big_c = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    pooled = CMAM(4, cm_size=4)
    full = CMAM(4, cm_size=0)
    full.load_state_dict(pooled.state_dict())
    small_l, small_c = F.adaptive_avg_pool2d(big_l, 4), F.adaptive_avg_pool2d(big_c, 4)
    for got, agg, residual in zip(
        pooled(big_l, big_c), full(small_l, small_c), (big_l, big_c), strict=True
    ):
        small_residual = F.adaptive_avg_pool2d(residual, 4)
        up = F.interpolate(agg - small_residual, size=16, mode="bilinear", align_corners=False)
        assert torch.allclose(got, up + residual, atol=1e-5)


def test_p_fp_replaces_every_cmam_and_keeps_the_shapes():
    lr, maps = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 68, 16, 16)
    g, pfp = ProUINet(TINY), ProUINet(replace(TINY, cmam=False))
    assert sum(isinstance(m, CMAM) for m in g.modules()) == 3
    assert not any(isinstance(m, CMAM) for m in pfp.modules())
    fusions = [b.cmam for b in pfp.blocks]
    assert all(isinstance(m, ResidualFusion) and len(m.body) == 3 for m in fusions)
    a, b = g(lr, maps), pfp(lr, maps)
    for key in ("images", "heatmaps"):
        assert [t.shape for t in a[key]] == [t.shape for t in b[key]]


def test_fewer_blocks_still_reach_128():
    lr, maps = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 68, 16, 16)
    one = ProUINet(replace(TINY, blocks=1))
    assert len(one.blocks) == 1 and len(one.blocks[0].tum.up) == 3  # its TUM upsamples x8
    out = one(lr, maps)
    assert [t.shape for t in out["images"]] == [(2, 3, 128, 128)]
    assert out["heatmaps"][0].shape == (2, 68, 64, 64)
    two = ProUINet(replace(TINY, blocks=2))
    assert [len(b.tum.up) for b in two.blocks] == [1, 2]
    assert [t.shape[-1] for t in two(lr, maps)["images"]] == [32, 128]


def _landmark_set(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Faces whose landmarks are drawn on them: a jittered, shifted 68-point template at 16 px
    painted as dots into the three channels (in [-1, 1]), and the points."""
    g = torch.Generator().manual_seed(seed)
    template = torch.rand(1, 68, 2, generator=g) * 8 + 4
    points = template + (torch.rand(n, 1, 2, generator=g) - 0.5) * 4
    points = points + torch.randn(n, 68, 2, generator=g) * 0.3
    dots = gaussian_heatmaps(points, 16, 16, 0.7).amax(1, keepdim=True)
    return (dots.expand(n, 3, 16, 16) * 2 - 1).contiguous(), points


def test_the_landmark_estimator_learns_a_tiny_set():
    torch.manual_seed(0)
    lr, points = _landmark_set(8)
    target = gaussian_heatmaps(points, 16, 16, 1.0)
    est = LandmarkEstimator(TINY_ESTIMATOR)
    opt = torch.optim.Adam(est.parameters(), 3e-3)

    def error() -> tuple[float, float]:
        with torch.no_grad():
            maps = est(lr)[-1]
            pixels = (heatmap_landmarks(maps, 16) - points).norm(dim=-1).mean()
        return F.mse_loss(maps, target).item(), pixels.item()

    mse0, err0 = error()
    for _ in range(40):
        loss = sum(F.mse_loss(m, target) for m in est(lr))
        opt.zero_grad()
        loss.backward()
        opt.step()
    mse, err = error()
    assert mse < 0.5 * mse0 and err < 0.9 * err0  # the heatmaps fit, and the peaks move in


def test_the_estimator_predicts_the_residual_over_its_template():
    torch.manual_seed(0)
    lr, points = _landmark_set(2)
    template = gaussian_heatmaps(points[:1], 16, 16, 1.0)[0]
    plain = LandmarkEstimator(replace(TINY_ESTIMATOR, template=False))
    with_template = LandmarkEstimator(TINY_ESTIMATOR)
    with_template.load_state_dict(plain.state_dict() | {"template": template})
    with torch.no_grad():
        for a, b in zip(with_template(lr), plain(lr), strict=True):
            assert torch.allclose(a - b, template.expand_as(a), atol=1e-6)
    assert "template" in with_template.state_dict()  # saved with the weights
    with pytest.raises(ValueError, match="template heatmaps"):
        with_template.set_template(torch.zeros(68, 8, 8))


def test_a_tiny_prouinet_overfits_one_batch():
    torch.manual_seed(0)
    # an 8 px input (8 -> 16 -> 32 -> 64) and 16 px heatmaps keep the steps within seconds
    g = ProUINet(replace(TINY, widths=(16, 16, 8, 8), heatmap_max=16), lr_size=8)
    hr = F.interpolate(torch.rand(2, 3, 8, 8) * 2 - 1, size=64, mode="bilinear")
    lr = F.interpolate(hr, size=8, mode="area")
    lr[:, :, 2:5, 2:5] = -1  # an occlusion
    points = torch.rand(2, 68, 2) * 52 + 6
    maps = gaussian_heatmaps(points, 64, 8, 1.0)
    targets = [F.interpolate(hr, size=s, mode="area") for s in (16, 32, 64)]
    target_maps = gaussian_heatmaps(points, 64, 16, 1.0)
    opt = torch.optim.Adam(g.parameters(), 5e-3)
    losses = []
    for _ in range(80):
        out = g(lr, maps)
        mse = sum(F.mse_loss(im, t) for im, t in zip(out["images"], targets, strict=True))
        loss = mse + sum(F.mse_loss(h, target_maps) for h in out["heatmaps"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((loss.item(), mse.item()))
    (first, first_mse), (last, last_mse) = losses[0], losses[-1]
    assert last < first / 4 and last_mse < first_mse / 2, losses[::10]
    assert all(b.cmam.log_scale.grad is not None for b in g.blocks)  # tau is learnt


def test_the_default_generator_fits_a_cpu_budget():
    g = ProUINet()
    assert 3e5 < sum(p.numel() for p in g.parameters()) < 1.5e6
    out = g(torch.zeros(1, 3, 16, 16), torch.zeros(1, 68, 32, 32))
    assert [t.shape[-1] for t in out["images"]] == [32, 64, 128]


def test_bad_configs_are_refused():
    assert ProUIGANConfig.from_params({"widths": [8, 8, 8, 4], "blocks": 1}).widths == (8, 8, 8, 4)
    for bad, match in [
        ({"blocks": 4}, "blocks must be 1, 2 or 3"),
        ({"blocks": 0}, "blocks must be 1, 2 or 3"),
        ({"widths": [8, 8, 8]}, "widths must be a list of 4 values"),
        ({"widths": [8, 8, 8, 2]}, "widths must be 4 channel counts, each >= 4"),
        ({"cm_size": 12}, "cm_size must be 0 or a power of 2"),
        ({"heatmap_max": 48}, "heatmap_max must be a power of 2"),
        ({"temperature": 0}, "temperature"),
        ({"res_blocks": -1}, "res_blocks must be >= 0"),
        ({"attention": True}, "unknown key"),
    ]:
        with pytest.raises((ValueError, KeyError), match=match):
            ProUIGANConfig.from_params(bad)
    with pytest.raises(ValueError, match="blocks must be 1, 2 or 3"):
        ProUINet(replace(TINY, blocks=5))  # a config built in code is checked too
    with pytest.raises(ValueError, match="power-of-2 LR size >= 8, not 12"):
        ProUINet(TINY, lr_size=12)
    with pytest.raises(ValueError, match="heatmap_size must be 8, 16, 32 or 64"):
        LandmarkEstimatorConfig.from_params({"heatmap_size": 24})

    g = ProUINet(TINY)
    lr = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match="expected 16 x 16 LR faces"):
        g(torch.zeros(2, 3, 32, 32), torch.zeros(2, 68, 16, 16))
    with pytest.raises(ValueError, match="B x 68 x S x S heatmaps for 2 faces"):
        g(lr, torch.zeros(2, 5, 16, 16))
    with pytest.raises(ValueError, match="upto must be 1..3"):
        g(lr, torch.zeros(2, 68, 16, 16), upto=4)
    with pytest.raises(ValueError, match="F_L .* and F_C .* differ"):
        CMAM(4)(torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4))
