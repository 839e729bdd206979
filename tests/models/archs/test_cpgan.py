"""The CPGAN generator: shapes, the ablation switches, the guide's role, the STN at start."""

import pytest
import torch

from models.archs.cpgan import CPGANConfig, CPGANGenerator, ExternalCPnet, InternalCPnet

TINY = {"width": 16, "internal_blocks": 1, "external_blocks": 1, "hourglass_width": 16}


def build(**kw) -> CPGANGenerator:
    torch.manual_seed(0)
    return CPGANGenerator(CPGANConfig(**{**TINY, **kw})).eval()


def inputs(seed: int = 0, n: int = 2):
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(n, 3, 16, 16, generator=g) * 2 - 1
    guide = torch.rand(n, 3, 128, 128, generator=g) * 2 - 1
    return lr, guide


def test_generator_shapes_and_backward():
    net = build().train()
    lr, guide = inputs()
    sr, maps = net(lr, guide, heatmaps=True)
    assert sr.shape == (2, 3, 128, 128) and sr.abs().max() <= 1
    assert len(maps) == 1 and maps[0].shape == (2, 68, 64, 64)
    with torch.no_grad():
        assert net.eval()(lr, guide).shape == sr.shape  # without heatmaps=True: the face alone
    net.train()
    sr, maps = net(lr, guide, heatmaps=True)
    (sr.mean() + maps[0].mean()).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_blocks_keep_their_shapes():
    x = torch.rand(2, 16, 8, 8)
    assert InternalCPnet(16, 1)(x).shape == x.shape
    assert ExternalCPnet(16, 1, copy=True)(x, torch.rand(2, 16, 8, 8)).shape == x.shape
    assert ExternalCPnet(16, 1, copy=False)(x, None).shape == x.shape


def test_the_guide_changes_the_output_only_with_the_external_cpnets():
    lr, guide = inputs(1)
    _, other = inputs(2)
    with torch.no_grad():
        on = build()
        assert not torch.allclose(on(lr, guide), on(lr, other), atol=1e-6)
        off = build(external=False)
        assert torch.equal(off(lr, guide), off(lr, other))


def test_ablation_switches_change_the_parameter_count_as_expected():
    def count(net):
        return sum(p.numel() for p in net.parameters())

    full, no_internal, no_external = build(), build(internal=False), build(external=False)
    c = 16
    # the Internal CPnet (1 residual block, CA, Copy block) becomes one 3x3 convolution
    internal = sum(p.numel() for p in full.internal.parameters())
    assert count(full) - count(no_internal) == internal - (c * c * 9 + c)
    # without the External CPnets' copies, two Copy blocks (16 and 32 px: 3 1x1 convs each) go
    copy = 3 * (c * c + c)
    assert count(full) - count(no_external) == 2 * copy
    # copying at 64 px too adds one Copy block at that width (c / 2, at least 16)
    h = full.config.widths()[64]
    assert count(build(copy_scales=(16, 32, 64))) - count(full) == 3 * (h * h + h)


def test_the_stns_start_as_the_identity():
    net = build()
    for stn in net.stn.values():
        x = torch.rand(2, 16, *stn.size)
        assert torch.allclose(stn(x), x, atol=1e-5)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="copy_scales"):
        CPGANConfig.from_params({"copy_scales": [128]})
    with pytest.raises(ValueError, match="width"):
        CPGANConfig.from_params({"width": 18})
