"""Vivid-FHnet: the shape of every module, the integration block against Eq. 1-2 computed
directly, the starting points (identity U-Nets, W_phi at zero) and each ablation switch."""

from dataclasses import replace

import pytest
import torch

from models.archs.vividgan import (
    CoarseFHNet,
    FineIntegrationNet,
    IntegrationBlock,
    TouchingUpNet,
    UNet,
    VividFHNet,
    VividGANConfig,
)

TINY = VividGANConfig(width=16, encoder_blocks=1, unet_width=4, locator_width=8, fine_width=8,
                      hourglass_width=8)  # fmt: skip


def test_every_module_has_its_shape():
    lr = torch.rand(2, 3, 16, 16) * 2 - 1
    assert CoarseFHNet(TINY)(lr).shape == (2, 3, 128, 128)
    unets = TouchingUpNet(4, 2)
    crops = [torch.rand(2, 3, h, w) for w, h in ((40, 40), (40, 40), (40, 32), (48, 32))]
    assert [t.shape for t in unets(crops)] == [c.shape for c in crops]
    fine, maps = FineIntegrationNet(TINY, 128)(
        torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128)
    )
    assert fine.shape == (2, 3, 128, 128) and [m.shape for m in maps] == [(2, 68, 32, 32)]
    g = VividFHNet(TINY)
    s = g(lr, upto="fine")
    assert s["coarse"].shape == s["fine"].shape == s["prior"].shape == (2, 3, 128, 128)
    assert s["locator"].shape == (2, 68, 32, 32) and s["boxes"].shape == (2, 4, 4)
    assert [t.shape[-2:] for t in s["touched"]] == [(40, 40), (40, 40), (32, 40), (32, 48)]
    assert g(lr).shape == (2, 3, 128, 128)
    assert VividFHNet(TINY, lr_size=8)(lr[..., :8, :8]).shape == (2, 3, 64, 64)


def test_integration_block_is_eq_1_and_2():
    torch.manual_seed(0)
    block = IntegrationBlock(5, sigma=0.7)
    torch.nn.init.normal_(block.phi.weight)
    f_c, f_h = torch.randn(2, 5, 6, 7), torch.randn(2, 3, 6, 7)
    got = block(f_c, f_h)
    want = torch.empty_like(f_c)
    for b in range(2):
        f_ch = torch.zeros(5, 6, 7)
        for k in range(3):
            z = (f_h[b, k] - f_h[b, k].mean()) / (f_h[b, k].flatten().std() + 1e-6)
            a = torch.exp(z / 0.7) / torch.exp(z / 0.7).sum()  # Eq. 1: spatial softmax
            v = (a[None] * f_c[b]).sum((1, 2))  # the landmark's feature vector
            f_ch += v[:, None, None] * (a / a.max())[None]  # Eq. 2
        want[b] = (
            torch.nn.functional.conv2d(f_ch[None], block.phi.weight, block.phi.bias)[0] + f_c[b]
        )
    assert torch.allclose(got, want, atol=1e-5)


def test_networks_start_from_the_identity_where_they_refine():
    x = torch.rand(1, 3, 32, 40)
    assert torch.equal(UNet(4, 2)(x), x)  # the refined crop starts as the crop
    f = torch.randn(1, 4, 5, 5)
    assert torch.equal(IntegrationBlock(4)(f, torch.rand(1, 68, 5, 5)), f)  # F_E = F_C
    g = VividFHNet(TINY)
    s = g(torch.rand(1, 3, 16, 16), upto="fine")
    assert torch.equal(s["fine"], s["coarse"])  # the fine face starts as the coarse one


def test_ablation_switches():
    lr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 128, 128)
    dagger = VividFHNet(replace(TINY, fine=False))
    assert not hasattr(dagger, "fine") and set(dagger(lr, upto="fine")) == {"coarse"}
    assert torch.equal(dagger(lr), dagger.coarse(lr))

    vtn = VividFHNet(replace(TINY, prior="coarse"))
    s = vtn(lr, upto="fine")
    assert all(t is c for t, c in zip(s["touched"], s["crops"], strict=True))

    gt = VividFHNet(replace(TINY, prior="ground_truth"))
    assert gt.needs_target and not vtn.needs_target
    s = gt(lr, hr, upto="fine")
    x1, y1, x2, y2 = s["boxes"][0, 2].long().tolist()
    assert torch.equal(s["touched"][2][0], hr[0, :, y1:y2, x1:x2])
    with pytest.raises(ValueError, match="needs the target"):
        gt(lr)

    plain = VividFHNet(replace(TINY, component_aware=False))
    assert plain(lr, upto="fine")["heatmaps"] == []


def test_bad_arch_params_are_refused():
    with pytest.raises(ValueError, match="prior"):
        VividGANConfig.from_params({"prior": "template"})
    with pytest.raises(ValueError, match="crops.nose"):
        VividGANConfig.from_params({"crops": {"nose": [41, 32]}})


def test_a_saved_vividgan_loads_back_and_the_protocol_feeds_v_gt_its_target(tmp_path):
    from models.eval.protocol import run_method
    from models.train.model_file import save_model
    from models.train.model_loader import load_model

    for cfg in (TINY, replace(TINY, prior="ground_truth")):
        torch.manual_seed(0)
        g = VividFHNet(cfg).eval()
        out = tmp_path / cfg.prior
        save_model(g, out, "vividgan", "pose", cfg.outputs(), 16, extra={})
        back, meta = load_model(out, network="vividgan", task="pose")
        assert meta["network"] == "vividgan"
        lr, hr = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 128, 128) * 2 - 1
        target = hr if cfg.prior == "ground_truth" else None
        with torch.no_grad():
            want = g(lr, target)
        got, _ = run_method(back, lr, 128, torch.device("cpu"), 2, target)
        assert got.shape == (3, 128, 128, 3)
        expect = ((want.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        assert (abs(got.astype(int) - expect.astype(int)) <= 1).all()


def test_sizes_the_fine_net_cannot_use_are_refused_at_build_time():
    with pytest.raises(ValueError, match="heatmap_size 48"):
        VividFHNet(replace(TINY, heatmap_size=48))
    with pytest.raises(ValueError, match="not divisible by 2\\^unet_depth = 16"):
        VividFHNet(replace(TINY, unet_depth=4))
