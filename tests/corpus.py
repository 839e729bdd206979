"""A corpus of awkward inputs built from bundled faces, with the outcome each must have."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# file name -> expected outcome: "face" (in the index) or the reject reason
EXPECTED = {
    "alice_front.jpg": "face",
    "bob_front.png": "face",
    "carol_empty.jpg": "empty file",
    "dave_truncated.jpg": "unreadable",
    "erin_text.jpg": "not an image",
    "frank_tiny.png": "too small",
    "gina_bomb.png": "too large",
    "hank_cmyk.jpg": "face",
    "ivan_16bit.png": "face",
    "june_gray.jpg": "face",
    "kate_noface.jpg": "no face",
    "liam_twofaces.jpg": "face",
    "mona_alpha.png": "face",
    "nick_rotated.jpg": "face",
    "notes.txt": "unsupported extension",
}


def _png_with_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims width x height but whose data is a few bytes (a 'bomb' header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def build(root: Path, photos: list[Path]) -> Path:
    """Write the corpus under ``root`` from three distinct bundled photos."""
    root.mkdir(parents=True, exist_ok=True)
    a, b, c = (Image.open(p).convert("RGB") for p in photos[:3])
    a.save(root / "alice_front.jpg", quality=95)
    b.save(root / "bob_front.png")
    (root / "carol_empty.jpg").write_bytes(b"")
    full = (photos[0]).read_bytes()
    (root / "dave_truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "erin_text.jpg").write_text("this is not a JPEG\n")
    Image.new("RGB", (1, 1), (200, 150, 100)).save(root / "frank_tiny.png")
    _png_with_header_only(root / "gina_bomb.png", 100_000, 100_000)
    c.convert("CMYK").save(root / "hank_cmyk.jpg", quality=95)
    gray16 = (np.asarray(a.convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(root / "ivan_16bit.png")
    b.convert("L").save(root / "june_gray.jpg", quality=95)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = (np.stack([xx / 400, yy / 300, (xx + yy) / 700], -1) * 255).astype(np.uint8)
    noisy = np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(root / "kate_noface.jpg")
    # Two people: a full-size face on the left, a half-size one on the right.
    two = Image.new("RGB", (512 + 256, 512), (128, 128, 128))
    two.paste(a, (0, 0))
    two.paste(c.resize((256, 256), Image.LANCZOS), (512, 128))
    two.save(root / "liam_twofaces.jpg", quality=95)
    rgba = c.convert("RGBA")
    alpha = np.full((512, 512), 255, np.uint8)
    alpha[:, :60] = 0  # a transparent strip on the left
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / "mona_alpha.png")
    # Stored turned 90 degrees counter-clockwise with EXIF orientation 6 ("turn 90 clockwise to
    # view"): upright only if the orientation is honoured.
    exif = Image.Exif()
    exif[0x0112] = 6
    b.transpose(Image.Transpose.ROTATE_90).save(root / "nick_rotated.jpg", quality=95, exif=exif)
    (root / "notes.txt").write_text("not a photo\n")
    return root
