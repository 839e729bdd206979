import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from models.archs import blocks
from models.archs.discriminators import PatchDiscriminator


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def backward_reaches_every_parameter(module: nn.Module, out: torch.Tensor) -> None:
    """A random projection of ``out`` backpropagated: every parameter gets a finite gradient
    that is not all zeros."""
    (out * torch.randn_like(out)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "make, in_ch, out_shape",
    [
        (lambda: blocks.ResidualBlock(6), 6, (2, 6, 8, 8)),
        (lambda: blocks.ResidualBlock(6, negative_slope=0.2, res_scale=0.1), 6, (2, 6, 8, 8)),
        (lambda: blocks.ChannelAttention(8, reduction=4), 8, (2, 8, 8, 8)),
        (lambda: blocks.ResidualChannelAttentionBlock(8, reduction=2), 8, (2, 8, 8, 8)),
        (lambda: blocks.Hourglass(2, 6), 6, (2, 6, 8, 8)),
        (lambda: blocks.HourglassResidual(4, 6), 4, (2, 6, 8, 8)),
        (lambda: blocks.Upsample2x(6, 4), 6, (2, 4, 16, 16)),
        (lambda: blocks.Upsample2x(6, 4, "pixelshuffle", relu=False), 6, (2, 4, 16, 16)),
        (lambda: PatchDiscriminator(3, width=4, layers=2), 3, (2, 1, 6, 6)),
        (lambda: PatchDiscriminator(3, width=4, layers=3, spectral_norm=False), 3, (2, 1, 2, 2)),
    ],
)
def test_block_shapes_and_gradients(make, in_ch, out_shape):
    module = make()
    size = 32 if isinstance(module, PatchDiscriminator) else 8
    out = module(torch.randn(2, in_ch, size, size))
    assert out.shape == out_shape
    backward_reaches_every_parameter(module, out)


def test_patch_discriminator_on_faces_gives_pix2pix_patches():
    d = PatchDiscriminator(width=2)
    assert d(torch.randn(1, 3, 128, 128)).shape == (1, 1, 14, 14)


def test_channel_attention_rescales_each_channel_by_a_weight_in_0_1():
    ca = blocks.ChannelAttention(8, reduction=2)
    x = torch.rand(2, 8, 5, 5) + 0.5
    ratio = ca(x) / x
    # one factor per sample and channel, the same at every position
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)
    assert (ratio > 0).all() and (ratio < 1).all()


def test_residual_blocks_are_the_identity_when_the_residual_is_zero():
    for block in (blocks.ResidualBlock(4), blocks.ResidualChannelAttentionBlock(4, 2)):
        last_conv = [m for m in block.body if isinstance(m, nn.Conv2d)][-1]
        nn.init.zeros_(last_conv.weight)
        nn.init.zeros_(last_conv.bias)
        x = torch.randn(1, 4, 6, 6)
        assert torch.equal(block(x), x)


# --- spatial transformer -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["affine", "similarity"])
@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_spatial_transformer_starts_as_the_identity(mode, padding_mode):
    stn = blocks.SpatialTransformer(5, mode, size=16, padding_mode=padding_mode)
    x = torch.randn(3, 5, 16, 16)
    out, theta = stn(x, return_theta=True)
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=1e-5)
    identity = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(3, 2, 3)
    assert torch.allclose(theta, identity)


def test_spatial_transformer_rejects_other_sizes_and_modes():
    stn = blocks.SpatialTransformer(2, size=(8, 8))
    with pytest.raises(ValueError, match="expected"):
        stn(torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="mode"):
        blocks.SpatialTransformer(2, "projective", size=8)


def _set_similarity(stn: blocks.SpatialTransformer, log_scale=0.0, angle=0.0, tx=0.0, ty=0.0):
    with torch.no_grad():
        stn.regressor[-1].bias.copy_(torch.tensor([log_scale, angle, tx, ty]))


def test_similarity_quarter_turn_rotates_anticlockwise_as_displayed():
    stn = blocks.SpatialTransformer(1, "similarity", size=8)
    _set_similarity(stn, angle=math.pi / 2)
    # a dot right of the centre (row 3, column 6 of 8) ends up above it (row 1, column 3):
    # an anticlockwise quarter turn on screen, x right and y down
    dot = torch.zeros(1, 1, 8, 8)
    dot[0, 0, 3, 6] = 1.0
    out = stn(dot).detach()
    assert out[0, 0, 1, 3] > 0.999 and out.sum().item() == pytest.approx(1.0, abs=1e-4)
    # and an asymmetric pattern turns as a whole, the way torch.rot90 turns it
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(stn(x), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    assert not torch.allclose(stn(x), torch.rot90(x, -1, dims=(2, 3)), atol=1e-2)


def test_similarity_theta_scale_and_translation():
    theta = blocks.similarity_theta(torch.tensor([[math.log(2.0), math.pi / 6, 0.25, -0.5]]))
    c, s = 2 * math.cos(math.pi / 6), 2 * math.sin(math.pi / 6)
    assert torch.allclose(theta, torch.tensor([[[c, -s, 0.25], [s, c, -0.5]]]))


def test_spatial_transformer_gradients_reach_the_localisation_net():
    for mode in ("affine", "similarity"):
        stn = blocks.SpatialTransformer(3, mode, size=16, padding_mode="zeros")
        out = stn(torch.randn(2, 3, 16, 16))
        out.sum().backward()
        # at the identity start only the last layer learns (its zero weights block the rest) ...
        assert stn.regressor[-1].weight.grad.abs().sum() > 0
        assert torch.isfinite(stn.regressor[-1].weight.grad).all()
        # ... and once it has moved, the gradient reaches every layer
        stn.zero_grad()
        with torch.no_grad():
            stn.regressor[-1].weight.normal_(0, 0.01)
        x = torch.randn(2, 3, 16, 16)
        backward_reaches_every_parameter(stn, stn(x))


# --- copy block ------------------------------------------------------------------------------


def ring_pattern(n: int) -> torch.Tensor:
    """1 x 4 x 4 x (n/4) features whose n positions are evenly spaced angles a_k, channels
    (cos a, sin a, cos 2a, sin 2a): after mean-variance normalisation every position has the same
    norm and its own direction, so each position matches itself best."""
    a = torch.arange(n) * 2 * math.pi / n
    return torch.stack([a.cos(), a.sin(), (2 * a).cos(), (2 * a).sin()]).view(1, 4, 4, n // 4)


def sharp_copy_block(sharpness: float) -> blocks.CopyBlock:
    block = blocks.CopyBlock(4)
    with torch.no_grad():
        for conv, gain in ((block.query, sharpness), (block.key, sharpness), (block.value, 1.0)):
            conv.weight.copy_(gain * torch.eye(4)[..., None, None])
            conv.bias.zero_()
    return block


def test_copy_block_with_sharp_attention_copies_the_matching_guide_values():
    block = sharp_copy_block(12.0)
    pattern = ring_pattern(16)
    # The content is the guide's pattern at other positions, and content and guide have their
    # own per-channel brightness and contrast: the normalised match finds, for every content
    # position, the guide position with the same pattern, and copies the guide's own
    # (unnormalised) values from there.
    scale, shift = torch.tensor([3.0, 0.5, 1.0, 2.0]), torch.tensor([5.0, -1.0, 0.0, 2.0])
    guide = pattern * scale[:, None, None] + shift[:, None, None]
    rolled = torch.roll(pattern, shifts=(1, 2), dims=(2, 3))
    content = rolled * scale.flip(0)[:, None, None] - shift[:, None, None]
    out, attention = block(content, guide, return_attention=True)
    assert out.shape == content.shape and attention.shape == (1, 16, 16)
    assert attention.max(-1).values.min() > 0.99
    expected = rolled * scale[:, None, None] + shift[:, None, None]
    assert torch.allclose(out, expected, atol=0.05)
    # the internal, self-copy use: the guide defaults to the content
    assert torch.allclose(block(guide), guide, atol=0.05)


def test_copy_block_softmax_runs_over_the_guide_positions():
    block = blocks.CopyBlock(3, embed=2)
    # a guide of another size than the content's, so that the two kinds of positions differ
    content, guide = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 3, 5)
    out, attention = block(content, guide, return_attention=True)
    assert out.shape == (2, 3, 4, 4) and attention.shape == (2, 16, 15)
    assert torch.allclose(attention.sum(-1), torch.ones(2, 16), atol=1e-5)
    assert not torch.allclose(attention.sum(1), torch.ones(2, 15), atol=1e-2)
    # flat attention (zero query): every content position gets the guide's mean value
    nn.init.zeros_(block.query.weight)
    nn.init.zeros_(block.query.bias)
    out = block(content, guide)
    expected = block.value(guide).mean((2, 3), keepdim=True).expand_as(out)
    assert torch.allclose(out, expected, atol=1e-5)


def test_copy_block_ignores_the_order_of_the_guide_positions():
    block = blocks.CopyBlock(6, embed=3)
    content, guide = torch.randn(2, 6, 5, 5), torch.randn(2, 6, 5, 5)
    perm = torch.randperm(25)
    shuffled = guide.flatten(2)[..., perm].view_as(guide)
    assert not torch.allclose(shuffled, guide)
    assert torch.allclose(block(content, shuffled), block(content, guide), atol=1e-5)
    # while permuting the content's positions permutes the output the same way
    shuffled_content = content.flatten(2)[..., perm].view_as(content)
    out = block(content, guide).flatten(2)[..., perm].view_as(content)
    assert torch.allclose(block(shuffled_content, guide), out, atol=1e-5)


def test_copy_block_gradients():
    block = blocks.CopyBlock(6, embed=3)
    content = torch.randn(2, 6, 5, 5, requires_grad=True)
    guide = torch.randn(2, 6, 5, 5, requires_grad=True)
    out = block(content, guide)
    assert out.shape == (2, 6, 5, 5)
    backward_reaches_every_parameter(block, out)
    for t in (content, guide):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


# --- hourglass -------------------------------------------------------------------------------


def test_hourglass_keeps_sizes_that_are_not_powers_of_two():
    hg = blocks.Hourglass(3, 4)
    for size in (8, 12, 10):
        assert hg(torch.randn(2, 4, size, size)).shape == (2, 4, size, size)


def test_stacked_hourglass_returns_one_heatmap_tensor_per_stack():
    net = blocks.StackedHourglass(5, stacks=3, channels=8, heatmaps=68, depth=2)
    x = torch.randn(2, 5, 12, 12)
    heats = net(x)
    assert isinstance(heats, list) and len(heats) == 3
    assert all(h.shape == (2, 68, 12, 12) for h in heats)
    # the last stack's heatmaps depend on the first stack's prediction: it is re-injected
    heats[-1].sum().backward()
    first_head = net.heads[0].weight.grad
    assert first_head is not None and first_head.abs().sum() > 0
    net.zero_grad()
    backward_reaches_every_parameter(net, torch.cat(net(x), 1))


# --- discriminator ---------------------------------------------------------------------------


def _convs(d: PatchDiscriminator) -> list[nn.Conv2d]:
    return [m for m in d.modules() if isinstance(m, nn.Conv2d)]


def test_patch_discriminator_convolutions_are_spectrally_normalised():
    d = PatchDiscriminator(3, width=4, layers=3)
    convs = _convs(d)
    assert len(convs) == 5 and all(parametrize.is_parametrized(c, "weight") for c in convs)
    # move the raw weights far from where the power iteration started, then let it track them
    with torch.no_grad():
        for c in convs:
            c.parametrizations.weight.original.mul_(7).add_(0.1)
    d.train()
    with torch.no_grad():
        for _ in range(30):
            d(torch.randn(1, 3, 32, 32))
    d.eval()
    for c in convs:
        sigma = torch.linalg.matrix_norm(c.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.02)
    # without it, the same initialisation is not normalised
    plain = PatchDiscriminator(3, width=4, layers=3, spectral_norm=False)
    assert not any(parametrize.is_parametrized(c) for c in _convs(plain))
    sigmas = [torch.linalg.matrix_norm(c.weight.flatten(1), ord=2).item() for c in _convs(plain)]
    assert max(abs(s - 1) for s in sigmas) > 0.1
