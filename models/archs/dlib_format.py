"""Reading dlib's serialised DNN files (``dlib::serialize`` of a ``loss_metric`` network).

dlib writes a network from the loss layer inwards: every ``add_layer`` writes its version and
then its sub-network before its own layer, so all the versions come first, then the input layer,
then each layer's details from the input towards the output, each followed by its
``add_layer``'s bookkeeping (three flags and the gradient/output buffers, empty in a saved
model). Tag and skip layers write nothing but a version, so the residual wiring is not in the
file: ``models.archs.identity`` rebuilds it from the layer sequence.

The encodings (dlib/serialize.h, dlib/cuda/tensor.h):
- integers: one byte holding the byte count (low nibble) and the sign (0x80), then the
  magnitude's bytes, least significant first;
- floats: a mantissa and a base-2 exponent, each such an integer;
- strings: their length as an integer, then the bytes; bools: the character '0' or '1';
- tensors (version 2): num_samples, k, nr, nc, then raw little-endian float32;
- alias tensors (views into a layer's ``params`` tensor): version, num_samples, k, nr, nc.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class DlibFormatError(ValueError):
    """A file that is not a dlib network of the kind this reader knows."""


@dataclass
class Layer:
    """One serialised layer: its dlib type name (``con_4``, ``affine_``, ...), its settings,
    and its parameter arrays (float32)."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """A parsed ``loss_metric`` network: the loss settings, the input layer's settings (mean
    colour and chip size) and the layers from the input onwards."""

    loss: dict[str, float]
    input: dict[str, Any]
    layers: list[Layer]


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: {what} at byte {self.pos}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def integer(self) -> int:
        head = self.byte()
        n = head & 0x0F
        if n > 8 or head & 0x70:
            raise self.fail(f"bad integer header 0x{head:02x}")
        value = int.from_bytes(self.data[self.pos : self.pos + n], "little")
        self.pos += n
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa * 2.0**exponent)

    def string(self) -> str:
        n = self.integer()
        if not 0 <= n < 256:
            raise self.fail(f"implausible string length {n}")
        s = self.data[self.pos : self.pos + n]
        self.pos += n
        return s.decode("ascii", errors="replace")

    def flag(self) -> bool:
        c = self.byte()
        if c not in (ord("0"), ord("1")):
            raise self.fail(f"expected a bool ('0' or '1'), got 0x{c:02x}")
        return c == ord("1")

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise self.fail(f"tensor serialisation version {version} (this reader knows 2)")
        shape = tuple(self.integer() for _ in range(4))
        n = int(np.prod(shape))
        end = self.pos + 4 * n
        if end > len(self.data):
            raise self.fail(f"tensor {shape} runs past the end of the file")
        a = np.frombuffer(self.data, "<f4", n, self.pos).reshape(shape).astype(np.float32)
        self.pos = end
        return a

    def alias(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise self.fail(f"alias tensor version {version} (this reader knows 1)")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


def _conv(r: _Reader) -> Layer:
    params = r.tensor().reshape(-1)
    nf, nr, nc, sy, sx, py, px = (r.integer() for _ in range(7))
    filters, biases = r.alias(), r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        r.real()
    k = filters[1]
    w = params[: nf * k * nr * nc].reshape(nf, k, nr, nc)
    b = params[nf * k * nr * nc : nf * k * nr * nc + nf]
    if filters != (nf, k, nr, nc) or biases[1] != nf:
        raise r.fail(f"convolution views {filters}, {biases} do not match {nf} filters")
    settings = {"stride": (sy, sx), "padding": (py, px)}
    return Layer("con", settings, {"weight": w.copy(), "bias": b.copy()})


def _affine(r: _Reader) -> Layer:
    params = r.tensor().reshape(-1)
    gamma, beta = r.alias(), r.alias()
    mode = r.integer()
    c = int(np.prod(gamma))
    if int(np.prod(beta)) != c or params.size != 2 * c:
        raise r.fail(f"affine views {gamma}, {beta} do not match {params.size} parameters")
    return Layer("affine", {"mode": mode}, {"gamma": params[:c].copy(), "beta": params[c:].copy()})


def _pool(kind: str):
    def read(r: _Reader) -> Layer:
        nr, nc, sy, sx, py, px = (r.integer() for _ in range(6))
        return Layer(kind, {"window": (nr, nc), "stride": (sy, sx), "padding": (py, px)})

    return read


def _fc(r: _Reader) -> Layer:
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor().reshape(-1)
    r.alias(), r.alias()
    bias_mode = r.integer()
    for _ in range(4):
        r.real()
    w = params[: outputs * inputs].reshape(inputs, outputs)  # dlib multiplies x (1 x in) by W
    arrays = {"weight": w.T.copy()}
    if bias_mode == 0 and params.size >= outputs * inputs + outputs:  # FC_HAS_BIAS
        arrays["bias"] = params[outputs * inputs : outputs * inputs + outputs].copy()
    return Layer("fc", {"outputs": outputs, "inputs": inputs, "bias_mode": bias_mode}, arrays)


LAYER_READERS = {
    "con_4": _conv,
    "affine_": _affine,
    "relu_": lambda r: Layer("relu"),
    "add_prev_": lambda r: Layer("add_prev"),
    "max_pool_2": _pool("max_pool"),
    "avg_pool_2": _pool("avg_pool"),
    "fc_2": _fc,
}


def read_network(path: str | Path) -> DlibNetwork:
    """Parse a dlib ``loss_metric`` network file (the face-recognition ResNet, say); every
    byte must be accounted for."""
    path = Path(path)
    r = _Reader(path.read_bytes(), str(path))
    if r.integer() != 1 or r.string() != "loss_metric_2":
        raise DlibFormatError(f"{path} is not a dlib loss_metric network")
    loss = {"margin": r.real(), "distance_threshold": r.real()}
    versions = []
    while True:  # the add_layer versions, outermost first, down to the input layer's
        v = r.integer()
        if v not in (1, 2, 3):
            raise r.fail(f"unexpected layer version {v}")
        versions.append(v)
        if v == 3:  # the add_layer sitting on the input layer
            break
    kind = r.string()
    if kind != "input_rgb_image_sized":
        raise r.fail(f"input layer {kind!r} (this reader knows input_rgb_image_sized)")
    mean = (r.real(), r.real(), r.real())
    size = (r.integer(), r.integer())
    layers = []
    first = True
    while r.pos < len(r.data):
        kind = r.string()
        reader = LAYER_READERS.get(kind)
        if reader is None:
            raise r.fail(f"layer type {kind!r} is not one this reader knows")
        layers.append(reader(r))
        for _ in range(3):  # setup called, gradient stale, output/gradient disabled
            r.flag()
        for _ in range(3):  # gradient and output buffers (empty once saved)
            r.tensor()
        if first:  # the input-side add_layer also stores its sample expansion factor
            r.integer()
            first = False
    n_layers = sum(v == 2 for v in versions) + 1
    if len(layers) != n_layers:
        raise DlibFormatError(f"{path}: {len(layers)} layers for {n_layers} layer headers")
    return DlibNetwork(loss, {"mean_rgb": mean, "size": size}, layers)
