"""Similarity alignment of a face to the canonical 68-point template, and the aligned crops.

Coordinates: landmarks are in pixel-index units (pixel centres at integers, as dlib and
OpenCV use). The template is in crop-size units: (0, 0) is the outer corner of the top-left
pixel and (1, 1) that of the bottom-right one, so template point ``u`` lands at pixel
``u * size - 0.5`` in a crop of ``size`` pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

# The canonical template: the generalised-Procrustes mean of dlib's 68 landmarks over the
# 102 bundled neutral front faces, made left-right symmetric, rotated so the eye centres lie
# level, scaled so the eye centres are 0.30 of the crop apart, and placed with their midpoint
# at (0.50, 0.38). The 68 points then span x 0.16..0.84 and y 0.26 (brows) .. 0.92 (chin),
# leaving the forehead and a little background in the crop.
TEMPLATE_68 = np.array(
    [
        (0.1604, 0.4045),
        (0.1675, 0.4938),
        (0.1813, 0.5803),
        (0.1965, 0.6671),
        (0.2218, 0.7496),
        (0.2676, 0.8195),
        (0.3330, 0.8746),
        (0.4109, 0.9133),
        (0.5000, 0.9249),
        (0.5891, 0.9133),
        (0.6670, 0.8746),
        (0.7324, 0.8195),
        (0.7782, 0.7496),
        (0.8035, 0.6671),
        (0.8187, 0.5803),
        (0.8325, 0.4938),
        (0.8396, 0.4045),
        (0.2174, 0.3243),
        (0.2579, 0.2778),
        (0.3197, 0.2597),
        (0.3833, 0.2659),
        (0.4445, 0.2882),
        (0.5555, 0.2882),
        (0.6167, 0.2659),
        (0.6803, 0.2597),
        (0.7421, 0.2778),
        (0.7826, 0.3243),
        (0.5000, 0.3605),
        (0.5000, 0.4137),
        (0.5000, 0.4660),
        (0.5000, 0.5208),
        (0.4392, 0.5740),
        (0.4688, 0.5828),
        (0.5000, 0.5902),
        (0.5312, 0.5828),
        (0.5608, 0.5740),
        (0.2915, 0.3830),
        (0.3273, 0.3566),
        (0.3729, 0.3566),
        (0.4124, 0.3867),
        (0.3708, 0.3977),
        (0.3252, 0.3993),
        (0.5876, 0.3867),
        (0.6271, 0.3566),
        (0.6727, 0.3566),
        (0.7085, 0.3830),
        (0.6748, 0.3993),
        (0.6292, 0.3977),
        (0.3796, 0.7023),
        (0.4251, 0.6724),
        (0.4682, 0.6556),
        (0.5000, 0.6641),
        (0.5318, 0.6556),
        (0.5749, 0.6724),
        (0.6204, 0.7023),
        (0.5756, 0.7287),
        (0.5338, 0.7393),
        (0.5000, 0.7419),
        (0.4662, 0.7393),
        (0.4244, 0.7287),
        (0.4014, 0.7016),
        (0.4676, 0.6915),
        (0.5000, 0.6938),
        (0.5324, 0.6915),
        (0.5986, 0.7016),
        (0.5324, 0.6940),
        (0.5000, 0.6972),
        (0.4676, 0.6940),
    ],
    dtype=np.float64,
)

# Index i's left-right counterpart in the iBUG 68-point markup.
IBUG68_MIRROR = np.array(
    [
        16,
        15,
        14,
        13,
        12,
        11,
        10,
        9,
        8,
        7,
        6,
        5,
        4,
        3,
        2,
        1,
        0,
        26,
        25,
        24,
        23,
        22,
        21,
        20,
        19,
        18,
        17,
        27,
        28,
        29,
        30,
        35,
        34,
        33,
        32,
        31,
        45,
        44,
        43,
        42,
        47,
        46,
        39,
        38,
        37,
        36,
        41,
        40,
        54,
        53,
        52,
        51,
        50,
        49,
        48,
        59,
        58,
        57,
        56,
        55,
        64,
        63,
        62,
        61,
        60,
        67,
        66,
        65,
    ]
)

# Points used to fit the alignment: brows, nose, eyes, mouth. The jaw line (0-16) moves with
# pose and expression and is poorly localised, so it would only pull the fit off.
ALIGN_POINTS = np.arange(17, 68)

BORDER_MODES = {
    "reflect": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
}


def template_pixels(size: int, zoom: float = 1.0) -> np.ndarray:
    """The template in pixel coordinates of a ``size`` crop; ``zoom`` > 1 enlarges the face."""
    pts = (TEMPLATE_68 - 0.5) * zoom + 0.5
    return pts * size - 0.5


def estimate_alignment(landmarks: np.ndarray, size: int, zoom: float = 1.0) -> np.ndarray:
    """2x3 similarity matrix taking source pixels to ``size`` crop pixels (least squares)."""
    src = np.asarray(landmarks, dtype=np.float64)[ALIGN_POINTS]
    dst = template_pixels(size, zoom)[ALIGN_POINTS]
    tf = SimilarityTransform.from_estimate(src, dst)
    if not tf:
        raise ValueError("degenerate landmarks: no similarity transform fits them")
    return tf.params[:2].copy()


def rescale_alignment(matrix: np.ndarray, size: int, new_size: int) -> np.ndarray:
    """The same alignment for a crop of ``new_size`` instead of ``size`` pixels."""
    k = new_size / size
    out = matrix * k
    out[:, 2] += 0.5 * k - 0.5
    return out


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def alignment_error(aligned_landmarks: np.ndarray, size: int, zoom: float = 1.0) -> float:
    """RMS distance of the fitted points to the template, over the template's eye distance."""
    tpl = template_pixels(size, zoom)
    d = np.asarray(aligned_landmarks, dtype=np.float64)[ALIGN_POINTS] - tpl[ALIGN_POINTS]
    eyes = tpl[42:48].mean(0) - tpl[36:42].mean(0)
    return float(np.sqrt((d**2).sum(1).mean()) / np.hypot(*eyes))


def warp_crop(
    image: np.ndarray, matrix: np.ndarray, size: int, border: str = "reflect"
) -> np.ndarray:
    """Crop ``size`` x ``size`` with the similarity ``matrix`` (source -> crop pixels).

    When the crop shrinks the source, the source is first reduced with area averaging so the
    bilinear warp that follows never skips pixels (a plain warpAffine aliases at 4x reduction).
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    h, w = image.shape[:2]
    src, m = image, np.asarray(matrix, dtype=np.float64)
    if scale < 1.0:
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        src = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / w, nh / h
        # crop <- source  ==  crop <- reduced o reduced <- source; undo the reduction on the right
        to_reduced = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        m = (np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(to_reduced))[:2]
    interp = cv2.INTER_LINEAR if scale < 1.0 else cv2.INTER_CUBIC
    return cv2.warpAffine(
        src, m, (size, size), flags=interp, borderMode=BORDER_MODES[border], borderValue=0
    )


def outside_fraction(shape: tuple[int, int], matrix: np.ndarray, size: int) -> float:
    """Fraction of the crop whose pixels come from outside the source image (border-filled)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    inv = cv2.invertAffineTransform(matrix)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    h, w = shape[:2]
    inside = (sx >= -0.5) & (sx <= w - 0.5) & (sy >= -0.5) & (sy <= h - 0.5)
    return float(1.0 - inside.mean())
