"""The loss functions: values at known inputs, zero exactly when they should be, gradients to
the generator's output, and the invariances that tell the VGG losses apart."""

from __future__ import annotations

import math

import pytest
import torch

from models.archs import vgg
from models.archs.vgg_features import KNOWN_LAYERS, VGGFeatures
from models.losses.adversarial import discriminator_loss, generator_loss
from models.losses.heatmap import gaussian_heatmaps, heatmap_loss
from models.losses.perceptual import (
    IlluminationCompensationLoss,
    PerceptualLoss,
    StyleLoss,
    gram_matrix,
)
from models.losses.pixel import mse_loss
from models.losses.symmetry import symmetry_loss


@pytest.fixture(scope="module")
def weights():
    return vgg.load_weights()


@pytest.fixture(scope="module")
def features(weights) -> VGGFeatures:
    """Every layer, shared by the losses below (as a training script would share one)."""
    return VGGFeatures(KNOWN_LAYERS, weights)


def images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


# --- VGGFeatures ---------------------------------------------------------------------------


def test_vgg_features_shapes_per_layer(features):
    out = features(images(2, 32))
    assert tuple(out) == KNOWN_LAYERS
    want = {
        "relu1_1": (64, 32),
        "relu1_2": (64, 32),
        "pool1": (64, 16),
        "relu2_1": (128, 16),
        "relu2_2": (128, 16),
        "pool2": (128, 8),
        "relu3_1": (256, 8),
        "relu3_2": (256, 8),
        "relu3_3": (256, 8),
        "relu3_4": (256, 8),
        "pool3": (256, 4),
        "relu4_1": (512, 4),
    }
    assert set(want) == set(KNOWN_LAYERS)
    for name, (c, s) in want.items():
        assert out[name].shape == (2, c, s, s), name
        assert (out[name] >= 0).all(), name  # all after a relu


def test_vgg_features_match_the_encoder_which_takes_0_1_input(features, weights):
    x01 = (images(2, 32, seed=1) + 1) / 2
    ours = features(x01 * 2 - 1)
    theirs = vgg.Encoder(weights)(x01)
    for name, ref in zip(("relu1_1", "relu2_1", "relu3_1", "relu4_1"), theirs, strict=True):
        assert torch.allclose(ours[name], ref, rtol=1e-4, atol=1e-3), name


def test_vgg_features_stop_after_the_deepest_requested_layer(features, weights):
    shallow = VGGFeatures(["relu2_1", "pool1", "relu2_1"], weights)
    assert shallow.layers == ("pool1", "relu2_1")  # network order, duplicates dropped
    convs = [m for m in shallow.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3  # conv1_1, conv1_2, conv2_1 and nothing deeper
    x = images(1, 32)
    out = shallow(x)
    assert tuple(out) == ("pool1", "relu2_1")
    assert torch.equal(out["relu2_1"], features(x)["relu2_1"])
    assert tuple(VGGFeatures("relu1_1", weights)(x)) == ("relu1_1",)


def test_vgg_features_reject_unknown_layers_listing_the_known(weights):
    with pytest.raises(ValueError, match="relu5_1") as e:
        VGGFeatures(["relu3_2", "relu5_1"], weights)
    assert all(name in str(e.value) for name in KNOWN_LAYERS)
    with pytest.raises(ValueError, match="no layers"):
        VGGFeatures([], weights)


def test_vgg_features_are_frozen_but_pass_gradients_to_the_input(features):
    assert not any(p.requires_grad for p in features.parameters())
    x = images(1, 32).requires_grad_()
    features(x)["relu4_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in features.parameters())


# --- every paired loss: 0 on identical inputs, positive otherwise, gradient to the output ----


def _losses(features):
    return {
        "mse": mse_loss,
        "perceptual": PerceptualLoss(vgg=features),
        "style": StyleLoss(vgg=features),
        "illumination": IlluminationCompensationLoss(vgg=features),
        "heatmap": heatmap_loss,
    }


@pytest.mark.parametrize("name", ["mse", "perceptual", "style", "illumination", "heatmap"])
def test_paired_loss_is_zero_only_for_identical_inputs_and_backpropagates(name, features):
    loss = _losses(features)[name]
    target = images(2, 32, seed=3)
    assert loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-6)
    output = images(2, 32, seed=4).requires_grad_()
    value = loss(output, target)
    # well above the identical inputs' 1e-6 (style, on scaled features, is the smallest: 5e-4)
    assert value.ndim == 0 and value.item() > 1e-4
    value.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all()
    assert output.grad.abs().sum() > 0


def test_paired_losses_refuse_mismatched_shapes(features):
    a, b = images(2, 32), images(2, 16)
    for name in ("mse", "perceptual", "style", "heatmap"):
        with pytest.raises(ValueError, match="shapes differ"):
            _losses(features)[name](a, b)


def test_mse_value():
    assert mse_loss(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)).item() == 0.25


def test_target_gets_no_gradient(features):
    output = images(1, 32, seed=5).requires_grad_()
    target = images(1, 32, seed=6).requires_grad_()
    PerceptualLoss(vgg=features)(output, target).backward()
    assert output.grad is not None and target.grad is None


def test_losses_share_one_vgg_and_check_it_has_their_layers(features, weights):
    p, s = PerceptualLoss(vgg=features), StyleLoss(vgg=features)
    ic = IlluminationCompensationLoss(vgg=features)
    assert p.vgg is s.vgg is ic.vgg is features
    with pytest.raises(ValueError, match="lacks"):
        StyleLoss(vgg=VGGFeatures(["relu3_2"], weights))
    # and a loss without a shared one builds the layers it needs, no more
    assert PerceptualLoss().vgg.layers == ("relu3_2",)


def test_layer_terms_are_summed(features):
    out, guide = images(1, 32, seed=7), images(1, 32, seed=8)
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    whole = IlluminationCompensationLoss(layers, features)(out, guide)
    parts = sum(IlluminationCompensationLoss([n], features)(out, guide) for n in layers)
    assert whole.item() == pytest.approx(parts.item(), rel=1e-5)
    whole = StyleLoss(vgg=features)(out, guide)
    parts = sum(StyleLoss([n], features)(out, guide) for n in ("pool1", "pool2", "pool3"))
    assert whole.item() == pytest.approx(parts.item(), rel=1e-5)


# --- what the Gram matrix and the channel statistics ignore --------------------------------


def test_gram_matrix_value_and_spatial_permutation_invariance():
    g = torch.Generator().manual_seed(9)
    feat = torch.randn(2, 5, 3, 4, generator=g)
    flat = feat.flatten(2)
    want = torch.stack([flat[b] @ flat[b].T for b in range(2)]) / (5 * 3 * 4)
    assert torch.allclose(gram_matrix(feat), want, atol=1e-6)
    perm = torch.randperm(12, generator=g)
    shuffled = flat[..., perm].reshape(2, 5, 3, 4)
    assert torch.allclose(gram_matrix(shuffled), gram_matrix(feat), atol=1e-6)


def _object_on_canvas(obj: torch.Tensor, x0: int) -> torch.Tensor:
    """A 16 px object at column x0 of a 32 x 224 canvas shaded top to bottom only.

    The VGG is translation-equivariant away from the borders, at shifts that are multiples of
    its stride (8 at pool3 and relu4_1); with the object's reach (its receptive field, under
    40 px either side at relu4_1) clear of the left and right borders' reach at both
    positions, the feature maps of two such canvases are the same vectors in other places."""
    h, w = 32, 224
    canvas = torch.linspace(-0.6, 0.4, h).view(1, 1, h, 1).expand(1, 3, h, w).clone()
    canvas[..., 8:24, x0 : x0 + 16] = obj
    return canvas


def test_style_and_illumination_losses_ignore_where_features_are_but_perceptual_does_not(
    features,
):
    g = torch.Generator().manual_seed(10)
    obj, other = (torch.rand(1, 3, 16, 16, generator=g) * 2 - 1 for _ in range(2))
    a, moved, different = (
        _object_on_canvas(obj, 96),
        _object_on_canvas(obj, 112),
        _object_on_canvas(other, 96),
    )
    perceptual = PerceptualLoss(vgg=features)
    style = StyleLoss(vgg=features)
    ic = IlluminationCompensationLoss(vgg=features)
    # the control: a different object changes all three
    for loss in (perceptual, style, ic):
        assert loss(a, different) > 0
    # moving the object: the features move, their Gram matrices and statistics do not
    assert perceptual(a, moved) > 0.5 * perceptual(a, different)
    assert style(a, moved) < 1e-8 * style(a, different)
    assert ic(a, moved) < 1e-8 * ic(a, different)
    # so a guide whose features differ from another's only in place gives the same L_ic
    out = _object_on_canvas(torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, 64)
    assert ic(out, moved).item() == pytest.approx(ic(out, a).item(), rel=1e-5)


def test_illumination_loss_takes_a_guide_of_another_size(features):
    out, guide = images(2, 32, seed=11), images(2, 48, seed=12)
    assert IlluminationCompensationLoss(vgg=features)(out, guide) > 0
    with pytest.raises(ValueError, match="batch"):
        IlluminationCompensationLoss(vgg=features)(out, guide[:1])


# --- symmetry --------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [32, 33])
def test_symmetry_loss_is_zero_for_a_mirror_symmetric_image(width):
    half = images(2, 32, seed=13)[..., : (width + 1) // 2]
    mirrored = torch.cat([half, half.flip(-1)[..., width % 2 :]], -1)
    assert mirrored.shape[-1] == width
    assert symmetry_loss(mirrored).item() == 0.0


def test_symmetry_loss_value_and_gradient():
    x = torch.ones(1, 3, 4, 6)
    x[..., 3:] = -1  # left half +1, right half -1: every pixel is 2 away from its mirror
    assert symmetry_loss(x).item() == pytest.approx(2.0)
    y = images(1, 16, seed=14).requires_grad_()
    value = symmetry_loss(y)
    assert value > 0
    value.backward()
    assert y.grad.abs().sum() > 0
    # a vertical flip is not what it measures
    top = images(1, 16)[..., :8, :]
    top_bottom = torch.cat([top, top.flip(-2)], -2)
    assert symmetry_loss(top_bottom) > 0.1


# --- heatmaps --------------------------------------------------------------------------------


@pytest.mark.parametrize("heatmap_size", [64, 128])
def test_heatmap_peaks_land_on_the_mapped_landmarks(heatmap_size):
    g = torch.Generator().manual_seed(15)
    landmarks = torch.rand(2, 68, 2, generator=g) * 120 + 4  # (x, y) in a 128 px image
    maps = gaussian_heatmaps(landmarks, 128, heatmap_size, sigma=1.5)
    assert maps.shape == (2, 68, heatmap_size, heatmap_size)
    flat = maps.flatten(2).argmax(2)
    peak_y, peak_x = flat // heatmap_size, flat % heatmap_size
    mapped = (landmarks + 0.5) * heatmap_size / 128 - 0.5
    assert torch.equal(peak_x, mapped[..., 0].round().long())
    assert torch.equal(peak_y, mapped[..., 1].round().long())
    assert (maps.amax((2, 3)) <= 1).all() and (maps.amax((2, 3)) > 0.7).all()


def test_heatmap_pixel_centre_convention_and_profile():
    # at half resolution heatmap pixel k covers image pixels 2k and 2k+1: its centre is the
    # image point 2k + 0.5, which must get the full peak value
    lm = torch.tensor([[[2 * 5 + 0.5, 2 * 9 + 0.5]]])  # heatmap pixel (x=5, y=9)
    maps = gaussian_heatmaps(lm, 128, 64, sigma=2.0)[0, 0]
    assert maps[9, 5].item() == pytest.approx(1.0)
    assert maps[9, 6].item() == pytest.approx(math.exp(-1 / 8))  # one pixel: exp(-1/(2 s^2))
    assert maps[11, 3].item() == pytest.approx(math.exp(-8 / 8))  # d^2 = 4 + 4
    # same size: the identity; integer landmarks are pixel centres
    same = gaussian_heatmaps(torch.tensor([[[7, 3]]]), 32, 32, sigma=1.0)
    assert same.dtype == torch.float32 and same[0, 0, 3, 7].item() == 1.0


def test_a_missing_landmark_gets_an_empty_heatmap():
    lm = torch.tensor([[[10.0, 12.0], [float("nan"), 5.0]]])
    maps = gaussian_heatmaps(lm, 64, 32, sigma=1.0)
    assert maps[0, 0].max() > 0.5 and torch.equal(maps[0, 1], torch.zeros(32, 32))


def test_heatmap_arguments_are_checked():
    with pytest.raises(ValueError, match="B x K x 2"):
        gaussian_heatmaps(torch.zeros(68, 2), 128, 64, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps(torch.zeros(1, 68, 2), 128, 64, 0.0)


# --- adversarial -----------------------------------------------------------------------------


def test_adversarial_losses_at_known_logits():
    zero = torch.zeros(4, 1)
    assert generator_loss(zero).item() == pytest.approx(math.log(2))
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert generator_loss(zero, "lsgan").item() == pytest.approx(0.5)
    assert discriminator_loss(zero, zero, "lsgan").item() == pytest.approx(0.5)
    # D perfect for least squares: real scored 1, fake 0
    assert discriminator_loss(torch.ones(4, 1), zero, "lsgan").item() == 0.0
    assert generator_loss(torch.full((3,), 3.0), "lsgan").item() == pytest.approx(2.0)
    # softplus form stays finite where log(sigmoid(x)) would be log(0)
    assert generator_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)
    assert discriminator_loss(torch.tensor([200.0]), torch.tensor([-200.0])).item() < 1e-6


@pytest.mark.parametrize("kind", ["nonsaturating", "lsgan"])
def test_discriminator_loss_falls_as_real_logits_rise(kind):
    fake = torch.zeros(8)
    reals = torch.linspace(-3, 1, 9)  # up to the least-squares target 1
    values = [discriminator_loss(torch.full((8,), r.item()), fake, kind).item() for r in reals]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    # and the generator's falls as its fakes score higher (up to 1, again)
    gen = [generator_loss(torch.full((8,), r.item()), kind).item() for r in reals]
    assert all(a > b for a, b in zip(gen, gen[1:], strict=False))


def test_adversarial_gradients_push_the_right_way():
    fake = torch.zeros(4, requires_grad=True)
    generator_loss(fake).backward()
    assert (fake.grad < 0).all()  # descending G's loss raises the fakes' scores
    real, fake = torch.zeros(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    discriminator_loss(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()


def test_unknown_adversarial_kind_names_the_choices():
    with pytest.raises(ValueError, match="nonsaturating.*lsgan"):
        generator_loss(torch.zeros(1), "hinge")
    with pytest.raises(ValueError, match="nonsaturating.*lsgan"):
        discriminator_loss(torch.zeros(1), torch.zeros(1), "wgan")


# --- feature scales --------------------------------------------------------------------------


def test_layer_scales_are_the_mean_activations_of_bundled_faces(features):
    from models.archs.vgg_features import LAYER_SCALES, layer_means
    from tests.helpers import bundled_faces

    faces = torch.from_numpy(bundled_faces(8, 128)).permute(0, 3, 1, 2).float() / 127.5 - 1
    means = layer_means(features, faces)
    assert set(means) == set(LAYER_SCALES) == set(KNOWN_LAYERS)
    for name, scale in LAYER_SCALES.items():
        assert means[name] == pytest.approx(scale, rel=0.01), name


def test_vgg_losses_of_a_bicubic_face_are_of_order_one(features):
    """What the scales are for: on the features' raw (Caffe) scale, L_f of a bicubic x8 face
    is ~4e4; divided by the layer scales it is ~2, near the papers' torchvision scale."""
    from tests.helpers import bundled_faces

    faces = torch.from_numpy(bundled_faces(4, 128)).permute(0, 3, 1, 2).float() / 127.5 - 1
    lr = torch.nn.functional.interpolate(faces, size=16, mode="area")
    up = torch.nn.functional.interpolate(lr, size=128, mode="bicubic").clamp(-1, 1)
    assert 0.3 < PerceptualLoss(vgg=features)(up, faces).item() < 10
    assert 0.3 < IlluminationCompensationLoss(vgg=features)(up, faces.roll(1, 0)).item() < 10
    assert 1e-5 < StyleLoss(vgg=features)(up, faces).item() < 1e-2
