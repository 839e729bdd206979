"""Named feature maps of the frozen VGG-19 (relu1_1 ... relu4_1, pool1 ... pool3), the feature
extractor of the perceptual, style and illumination-compensation losses.

Built from the same decoded ImageNet weights as ``models.archs.vgg.Encoder`` (RaIN's encoder),
but taking images in the networks' range [-1, 1] and returning any of the intermediate layers
by name. The weights stop at block4_conv1, so relu4_1 is the deepest layer there is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from models.archs import vgg


def _layer_names() -> tuple[str, ...]:
    """The conventional names of the outputs of ``vgg.LAYERS``, in network order: block b's
    i-th convolution (with its relu) is ``relu{b}_{i}``, the pooling after block b ``pool{b}``."""
    names: list[str] = []
    block = 0
    for item in vgg.LAYERS:
        if item == "pool":
            names.append(f"pool{block}")
            continue
        name = item[0]  # "block3_conv2"
        b, i = name.removeprefix("block").split("_conv")
        block = int(b)
        names.append(f"relu{b}_{i}")
    return tuple(names)


KNOWN_LAYERS = _layer_names()

# Each layer's mean activation over the first 8 bundled neutral fronts (centre-cropped, 128 px;
# ``layer_means``; aligned crops from data/faces agree within 15%). The losses divide the
# features by these, so that a loss on any layer is of order one where the raw Caffe-scale
# features (0-255 input) make it 1e4-1e6 and the papers' loss weights could not carry over.
# Re-measure them (``tests/models/losses`` checks the figures) if the VGG weights change.
LAYER_SCALES: dict[str, float] = {
    "relu1_1": 17.8,
    "relu1_2": 92.9,
    "pool1": 110.0,
    "relu2_1": 103.0,
    "relu2_2": 89.4,
    "pool2": 146.0,
    "relu3_1": 109.0,
    "relu3_2": 138.0,
    "relu3_3": 295.0,
    "relu3_4": 395.0,
    "pool3": 610.0,
    "relu4_1": 452.0,
}


class VGGFeatures(nn.Module):
    """Frozen VGG-19 (ImageNet weights) that returns the requested feature maps by name.

    ``layers``: any of ``KNOWN_LAYERS`` (relu1_1, relu1_2, pool1, relu2_1, relu2_2, pool2,
    relu3_1 ... relu3_4, pool3, relu4_1); the network is built only up to the deepest one, so
    asking for shallow layers costs only those. ``weights`` (from ``vgg.load_weights()``) may be
    passed to avoid decoding the file again.

    The weights do not train (``requires_grad`` is False), but the forward pass is an ordinary
    differentiable function of its input: losses built on it backpropagate to the generator.
    One instance can be shared by several losses (they check it has their layers).
    """

    def __init__(
        self,
        layers: Sequence[str],
        weights: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        super().__init__()
        if isinstance(layers, str):
            # a bare name is a Sequence[str] of its letters; take it as the one layer it names
            layers = [layers]
        unknown = [name for name in layers if name not in KNOWN_LAYERS]
        if unknown:
            raise ValueError(
                f"unknown VGG-19 layer(s) {unknown}; known layers: {', '.join(KNOWN_LAYERS)}"
            )
        if not layers:
            raise ValueError(f"no layers requested; known layers: {', '.join(KNOWN_LAYERS)}")
        # network order, duplicates dropped: the dict forward returns follows it
        self.layers: tuple[str, ...] = tuple(n for n in KNOWN_LAYERS if n in set(layers))
        depth = KNOWN_LAYERS.index(self.layers[-1]) + 1

        weights = weights if weights is not None else vgg.load_weights()
        self.steps = nn.ModuleList()
        for item in vgg.LAYERS[:depth]:
            if item == "pool":
                # as vgg.Encoder (Keras's VGG): 2x2 max pooling, stride 2
                self.steps.append(nn.MaxPool2d(2, 2))
                continue
            name, cin, cout = item
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            w, b = weights[name]
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(b)
            # not in place: the relu output may be one of the returned maps
            self.steps.append(nn.Sequential(conv, nn.ReLU()))
        self.names = KNOWN_LAYERS[:depth]
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image``: B x 3 x H x W RGB in [-1, 1] (the networks' range). Returns
        ``{layer: B x C x h x w}`` for the requested layers, in network order; C is 64, 128, 256
        or 512 for blocks 1-4, h x w is H x W in block 1 and halves at each pool (floor)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected B x 3 x H x W RGB images, got {tuple(image.shape)}")
        # vgg.normalise wants RGB in [0, 1] and turns it into Caffe's BGR, 0-255, mean-free
        x = vgg.normalise((image + 1) / 2)
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        for name, step in zip(self.names, self.steps, strict=True):
            x = step(x)
            if name in wanted:
                out[name] = x
        return out


def layer_means(features: VGGFeatures, images: torch.Tensor) -> dict[str, float]:
    """Mean activation of each of ``features``' layers over ``images`` (B x 3 x H x W in
    [-1, 1]): how ``LAYER_SCALES`` was measured."""
    with torch.no_grad():
        return {name: float(f.mean()) for name, f in features(images).items()}


def normalised(feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each feature map divided by its layer's ``LAYER_SCALES`` entry (order one on faces)."""
    return {name: f / LAYER_SCALES[name] for name, f in feats.items()}
