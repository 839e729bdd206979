"""The degrade step every pairs stage ends with: a random similarity misalignment, then
anti-aliased downsampling to the LR size.

CPGAN and VividGAN feed their networks misaligned LR faces (rotated, shifted, scaled) and undo
that with an STN; Pro-UIGAN keeps aligned inputs, so each task can switch the transform off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from datagen.core.params import ParamGroup
from datagen.face.align import BORDER_MODES, apply_affine

INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class DegradeParams(ParamGroup):
    """The ``degrade`` param group.

    Defaults: rotation up to 10 degrees, shift up to 5% of the face size per axis (6.4 px at 128,
    0.8 px at 16) and scale 0.9-1.1: the misalignment a face detector leaves on real thumbnails,
    which an STN in front of the hallucination network must learn to undo. Widen them for
    harder data.
    """

    GROUP = "degrade"
    lr_size: int = 16
    interpolation: str = "bilinear"  # bilinear | bicubic (both anti-aliased) | area
    rotation: float = 10.0  # degrees; uniform in [-rotation, rotation]
    shift: float = 0.05  # fraction of the HR size; uniform in [-shift, shift] per axis
    scale: tuple[float, float] = (0.9, 1.1)  # uniform in [lo, hi]
    border: str = "reflect"  # fill where the transform uncovers the crop's outside

    def validate(self) -> None:
        if self.interpolation not in (*INTERPOLATIONS, "area"):
            raise ValueError(
                f"degrade.interpolation must be bilinear, bicubic or area, not {self.interpolation!r}"
            )
        if self.border not in BORDER_MODES:
            raise ValueError(f"degrade.border must be one of {list(BORDER_MODES)}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError("degrade.scale must be [lo, hi] with 0 < lo <= hi")
        if self.rotation < 0 or self.shift < 0 or self.lr_size < 1:
            raise ValueError(
                "degrade.rotation and degrade.shift must be >= 0, degrade.lr_size >= 1"
            )


def similarity_matrix(
    angle: float, shift_x: float, shift_y: float, scale: float, size: int
) -> np.ndarray:
    """2x3 matrix: rotate by ``angle`` degrees (counter-clockwise on screen) and scale about the
    crop centre, then shift by (``shift_x``, ``shift_y``) pixels."""
    c = (size - 1) / 2.0
    m = cv2.getRotationMatrix2D((c, c), angle, scale)
    m[:, 2] += (shift_x, shift_y)
    return m


def random_transform(rng: np.random.Generator, p: DegradeParams, size: int) -> dict[str, Any]:
    """Draw angle, shift and scale; returns them with the 2x3 matrix (HR pixels -> HR pixels)."""
    angle = float(rng.uniform(-p.rotation, p.rotation))
    sx, sy = (float(v) for v in rng.uniform(-p.shift, p.shift, 2) * size)
    scale = float(rng.uniform(*p.scale))
    return {
        "angle": angle,
        "shift_x": sx,
        "shift_y": sy,
        "scale": scale,
        "matrix": similarity_matrix(angle, sx, sy, scale, size),
    }


IDENTITY_TRANSFORM = {"angle": 0.0, "shift_x": 0.0, "shift_y": 0.0, "scale": 1.0}


def warp(image: np.ndarray, matrix: np.ndarray, border: str = "reflect") -> np.ndarray:
    """Apply a 2x3 matrix to an HR image, same size out (bilinear)."""
    if np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]):
        return image.copy()
    h, w = image.shape[:2]
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=BORDER_MODES[border]
    )


def downsample(image: np.ndarray, size: int, interpolation: str = "bilinear") -> np.ndarray:
    """Anti-aliased resize to ``size`` x ``size``: Pillow's bilinear/bicubic widen their kernel by
    the reduction factor; ``area`` is OpenCV's box average."""
    if interpolation == "area":
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(Image.fromarray(image).resize((size, size), INTERPOLATIONS[interpolation]))


def scale_points(points: np.ndarray, src_size: int, dst_size: int) -> np.ndarray:
    """Pixel coordinates in a ``src_size`` image -> the same places in a resized ``dst_size`` one."""
    k = dst_size / src_size
    return (np.asarray(points, dtype=np.float64) + 0.5) * k - 0.5


def degrade(
    image: np.ndarray,
    landmarks: np.ndarray,
    rng: np.random.Generator,
    p: DegradeParams,
    transform: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """HR image (+ its landmarks) -> LR image and metadata.

    Metadata: ``angle``, ``shift_x``, ``shift_y`` (HR pixels), ``scale``, ``matrix`` (2x3, HR
    pixels -> transformed HR pixels; identity when ``transform`` is off) and ``landmarks_lr``
    (68 x 2, LR pixels). The generator is only drawn from when ``transform`` is on.
    """
    size = image.shape[0]
    if transform:
        t = random_transform(rng, p, size)
    else:
        t = {**IDENTITY_TRANSFORM, "matrix": similarity_matrix(0, 0, 0, 1, size)}
    moved = warp(image, t["matrix"], p.border)
    lr = downsample(moved, p.lr_size, p.interpolation)
    lm = scale_points(apply_affine(landmarks, t["matrix"]), size, p.lr_size)
    return lr, {**t, "landmarks_lr": lm.astype(np.float32)}
