"""The identity network: dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``,
shipped by the PyPI package ``face-recognition-models``) read into torch by our own parser.

The papers' identity loss and identity metric use a pretrained face network's pooled features;
none downloads here, and this one is on disk. It maps a 150x150 RGB face chip (dlib's
``get_face_chip`` alignment, padding 0.25) to a 128-D descriptor; dlib calls two faces the same
person when their descriptors are nearer than 0.6. In torch it is differentiable, so it serves
as the identity loss as well as the metric.

Architecture (dlib's ``dnn_face_recognition_ex.cpp``, rebuilt from the layer sequence of the
file): a 7x7/2 convolution (32) with affine (frozen batch norm) and ReLU, 3x3/2 max pooling,
then 14 residual units (3 x 32, 4 x 64, 3 x 128, 3 x 256, 1 x 256 channels; the first unit of
each later level downsamples: 3x3/2 convolution, its shortcut a 2x2/2 average pooling), a global
average pooling and a 256 -> 128 linear map without bias. dlib adds a unit's output to its
shortcut even when their shapes differ (more channels, or a 3x3 output against a 4x4 pooled
shortcut): both are zero-padded at the end of each dimension to the larger shape, and so here.

Converted weights are cached as safetensors under ``data/cache/`` (never committed), keyed by
the SHA-256 of the dlib file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from datagen.core.shards import sha256_file
from datagen.face.identity import SAME_PERSON  # noqa: F401  (dlib's threshold, one definition)
from models.archs.dlib_format import DlibNetwork, Layer, read_network
from models.train.checkpoints import CheckpointError, load_tensors, save_tensors

DLIB_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CACHE = Path("data/cache/dlib_face_recognition_resnet_v1.safetensors")
CHIP_SIZE = 150  # dlib's input_rgb_image_sized<150>
CHIP_PADDING = 0.25  # dlib's get_face_chip padding for this network


def dlib_file() -> Path:
    """Where ``face-recognition-models`` installed the network."""
    from datagen.face.landmarks import dlib_model_path

    return dlib_model_path(DLIB_FILE)


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: B x C x H x W tensors of possibly different C, H, W are zero-padded
    at the end of each dimension to the larger size, then added."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = (s - n for s, n in zip(shape, t.shape[1:], strict=True))
        return F.pad(t, (0, w, 0, h, 0, c)) if c or h or w else t

    return pad(a) + pad(b)


class Affine(nn.Module):
    """dlib's ``affine_`` (batch norm frozen into a per-channel scale and shift):
    B x C x H x W -> B x C x H x W."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class ResidualUnit(nn.Module):
    """dlib's ``ares`` / ``ares_down``: relu(add_prev(affine(conv(relu(affine(conv(x))))),
    shortcut(x))) with the shortcut ``x`` itself, or its 2x2/2 average when the unit
    downsamples. B x C x H x W -> B x C' x H' x W'."""

    def __init__(self, c_in: int, c_out: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 2 if down else 1, 0 if down else 1)
        self.affine1 = Affine(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.affine2 = Affine(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_padded(y, shortcut))


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet. ``forward``: B x 3 x 150 x 150 RGB in [0, 255] (float,
    a dlib face chip) -> B x 128 descriptors; ``descriptor_from_unit`` takes [-1, 1] images."""

    UNITS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))

    def __init__(self, mean_rgb: tuple[float, float, float] = (122.782, 117.001, 104.298)):
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor(mean_rgb).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine = Affine(32)
        units, c = [], 32
        for width, n, down in self.UNITS:
            for i in range(n):
                units.append(ResidualUnit(c, width, down and i == 0))
                c = width
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        # dlib's input layer: (pixel - mean colour) / 256
        x = (chips - self.mean_rgb) / 256.0
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)
        x = self.units(x)
        return self.fc(x.mean((2, 3)))

    def descriptor_from_unit(self, chips: torch.Tensor) -> torch.Tensor:
        """B x 3 x 150 x 150 RGB chips in [-1, 1] (the networks' range) -> B x 128."""
        return self((chips + 1.0) * 127.5)


def load_dlib_weights(model: DlibFaceResNet, net: DlibNetwork) -> None:
    """Copy a parsed dlib network into ``model``, checking that its layer sequence is the
    face-recognition ResNet's (``DlibFormatError``-free parse assumed)."""
    kinds = [layer.kind for layer in net.layers]
    stem, rest = net.layers[:4], net.layers[4:]
    if kinds[:4] != ["con", "affine", "relu", "max_pool"] or kinds[-2:] != ["avg_pool", "fc"]:
        raise ValueError(f"not dlib's face-recognition ResNet: layers {kinds[:4]} ... {kinds[-2:]}")
    units: list[list[Layer]] = []
    current: list[Layer] = []
    for layer in rest[:-2]:
        current.append(layer)
        if layer.kind == "relu" and any(x.kind == "add_prev" for x in current):
            units.append(current)
            current = []
    if current or len(units) != len(model.units):
        raise ValueError(f"{len(units)} residual units in the file, {len(model.units)} expected")
    with torch.no_grad():
        _copy_conv(model.conv, stem[0])
        _copy_affine(model.affine, stem[1])
        for unit, layers in zip(model.units, units, strict=True):
            pattern = [x.kind for x in layers]
            want = ["con", "affine", "relu", "con", "affine"]
            want += ["avg_pool", "add_prev", "relu"] if unit.down else ["add_prev", "relu"]
            if pattern != want:
                raise ValueError(f"residual unit layers {pattern}, expected {want}")
            _copy_conv(unit.conv1, layers[0])
            _copy_affine(unit.affine1, layers[1])
            _copy_conv(unit.conv2, layers[3])
            _copy_affine(unit.affine2, layers[4])
        model.fc.weight.copy_(torch.from_numpy(net.layers[-1].arrays["weight"]))
        model.mean_rgb.copy_(torch.tensor(net.input["mean_rgb"]).view(1, 3, 1, 1))


def _copy_conv(conv: nn.Conv2d, layer: Layer) -> None:
    w, b = layer.arrays["weight"], layer.arrays["bias"]
    if tuple(conv.weight.shape) != w.shape or tuple(conv.stride) != layer.settings["stride"]:
        raise ValueError(f"convolution {w.shape} {layer.settings} does not fit {conv}")
    conv.weight.copy_(torch.from_numpy(w))
    conv.bias.copy_(torch.from_numpy(b))


def _copy_affine(affine: Affine, layer: Layer) -> None:
    affine.gamma.copy_(torch.from_numpy(layer.arrays["gamma"]))
    affine.beta.copy_(torch.from_numpy(layer.arrays["beta"]))


def identity_network(
    source: str | Path | None = None, cache: str | Path | None = CACHE
) -> DlibFaceResNet:
    """dlib's face-recognition ResNet in eval mode with frozen weights, from the converted
    cache when it matches ``source`` (default: the installed dlib file), else parsed from
    ``source`` and cached (``cache=None``: not cached)."""
    source = Path(source) if source is not None else dlib_file()
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: run `uv sync` (face-recognition-models)")
    sha = sha256_file(source)
    model = DlibFaceResNet()
    cache = Path(cache) if cache is not None else None
    loaded = False
    if cache is not None and cache.is_file():
        try:
            tensors, meta = load_tensors(cache)
            if meta.get("source_sha256") == sha:
                model.load_state_dict(tensors)
                loaded = True
        except (CheckpointError, RuntimeError):
            loaded = False  # a stale or damaged cache is rebuilt
    if not loaded:
        load_dlib_weights(model, read_network(source))
        if cache is not None:
            save_tensors(model.state_dict(), cache, {"source_sha256": sha, "source": source.name})
    model.requires_grad_(False)
    return model.eval()


def chip_matrix(crop_size: int) -> torch.Tensor:
    """2 x 3 affine taking dlib face-chip pixels (150 x 150) to pixels of the project's aligned
    crop of side ``crop_size`` (``datagen.face.align``'s template): where dlib's
    ``get_face_chip`` would cut its chip from a face whose landmarks sit exactly on the template.

    dlib aligns chips with its own mean shape; rather than re-deriving its rule, dlib itself
    cuts a chip from images whose pixel values are their own coordinates (bilinear sampling
    keeps them exact), and the affine is fitted to that."""
    import dlib
    import numpy as np

    from datagen.face.align import TEMPLATE_68

    # dlib's landmarks are integers: place the template at 16x the size, then scale back
    big = 16 * crop_size
    pts = TEMPLATE_68 * big - 0.5
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    shape = dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in pts])
    details = dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING)
    ys, xs = np.mgrid[0:big, 0:big].astype(np.float32)
    cx = dlib.extract_image_chip(np.ascontiguousarray(xs), details).astype(np.float64)
    cy = dlib.extract_image_chip(np.ascontiguousarray(ys), details).astype(np.float64)
    v, u = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE]
    design = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1)
    target = np.stack([cx.ravel(), cy.ravel()], 1)
    m, *_ = np.linalg.lstsq(design, target, rcond=None)  # 3 x 2
    m = m.T
    # big-crop pixels -> crop pixels: (p + 0.5) * crop_size / big - 0.5
    s = crop_size / big
    m = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5]]) @ np.vstack([m, [0, 0, 1]])
    return torch.tensor(m, dtype=torch.float32)


def chip_grid_theta(crop_size: int) -> torch.Tensor:
    """``chip_matrix`` in ``F.affine_grid``'s normalised coordinates (align_corners=False):
    1 x 2 x 3, chip -> crop."""
    m = torch.cat([chip_matrix(crop_size).double(), torch.tensor([[0.0, 0.0, 1.0]]).double()])

    def to_norm(n: int) -> torch.Tensor:  # pixel -> [-1, 1]
        return torch.tensor([[2 / n, 0, 1 / n - 1], [0, 2 / n, 1 / n - 1], [0, 0, 1]]).double()

    theta = to_norm(crop_size) @ m @ torch.linalg.inv(to_norm(CHIP_SIZE))
    return theta[:2].float().unsqueeze(0)


def crops_to_chips(crops: torch.Tensor) -> torch.Tensor:
    """Aligned crops (B x 3 x S x S, any range) -> dlib face chips (B x 3 x 150 x 150, same
    range), by bilinear resampling with ``chip_grid_theta`` (differentiable)."""
    b, _, s, _ = crops.shape
    theta = _theta(s, crops.device, crops.dtype).expand(b, -1, -1)
    grid = F.affine_grid(theta, [b, 3, CHIP_SIZE, CHIP_SIZE], align_corners=False)
    return F.grid_sample(crops, grid, mode="bilinear", padding_mode="border", align_corners=False)


_THETAS: dict[int, torch.Tensor] = {}


def _theta(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if size not in _THETAS:
        _THETAS[size] = chip_grid_theta(size)
    return _THETAS[size].to(device, dtype)
