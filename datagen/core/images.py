"""Reading arbitrary user photos into 8-bit RGB arrays, with a specific reason when that fails."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".pgm",
    ".ppm",
    ".pbm",
    ".pnm",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
)

# Pillow's own bomb guard raises for anything over 2x this; we check the header ourselves
# against the user's limit instead, so raise Pillow's limit out of the way.
Image.MAX_IMAGE_PIXELS = None


class ImageRejected(Exception):
    """An input file that cannot become a face image; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> HxWx3 uint8. Alpha is composited over white, high bit depths rescaled."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im).astype(np.float64)
        # Pillow opens 16-bit PNG/PGM as I or I;16; a 32-bit "I" that fits 16 bits is 16-bit data.
        top = 65535.0 if mode != "I" or a.max(initial=0) <= 65535 else float(a.max())
        g = np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        lo, hi = float(a.min(initial=0)), float(a.max(initial=1))
        top = 1.0 if hi <= 1.0 and lo >= 0.0 else hi
        g = np.clip(np.round(a * (255.0 / max(top, 1e-12))), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def _open(path: Path) -> Image.Image:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageRejected("unreadable", f"cannot stat file ({e.strerror})") from e
    if size == 0:
        raise ImageRejected("empty file", "0 bytes")
    try:
        return Image.open(path)
    except UnidentifiedImageError as e:
        raise ImageRejected("not an image", "no known image format in the file header") from e
    except OSError as e:
        raise ImageRejected("unreadable", str(e)) from e


def load_rgb(path: Path, max_pixels: int, min_side: int) -> np.ndarray:
    """Decode ``path`` to an HxWx3 uint8 RGB array with EXIF orientation applied.

    Raises ImageRejected with reason ``empty file``, ``not an image``, ``too large`` (header
    claims more than ``max_pixels``, checked before decoding), ``too small`` (shorter side under
    ``min_side``) or ``unreadable`` (truncated or corrupt data).
    """
    with _open(path) as im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageRejected("too large", f"{w}x{h} pixels exceeds max_pixels={max_pixels}")
        if min(w, h) < min_side:
            raise ImageRejected("too small", f"{w}x{h} pixels, shorter side under {min_side}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow warns on odd EXIF; not our concern
                im.load()
                im = ImageOps.exif_transpose(im)
            return _to_rgb8(im)
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise ImageRejected("unreadable", f"corrupt or truncated image data ({e})") from e


def square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square, then area (shrinking) or bilinear (enlarging) resize to ``size``."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = rgb[y0 : y0 + s, x0 : x0 + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def tile_grid(rows: list[list[np.ndarray]], pad: int = 2, border: bool = True) -> np.ndarray:
    """Images (uint8 RGB, equal sizes) laid out row by row on white, ``pad`` pixels apart; with
    ``border`` also ``pad`` pixels before the first row and column."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    lead = pad if border else 0
    grid = np.full((len(rows) * (h + pad) + lead, cols * (w + pad) + lead, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            y, x = lead + i * (h + pad), lead + j * (w + pad)
            grid[y : y + h, x : x + w] = im
    return grid


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (folders made as needed); an error if nothing was written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
