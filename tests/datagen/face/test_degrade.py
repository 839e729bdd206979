import numpy as np
import pytest
from PIL import Image

from datagen.face.align import apply_affine
from datagen.face.degrade import (
    DegradeParams,
    degrade,
    downsample,
    random_transform,
    scale_points,
    warp,
)


def face_like(seed: int = 0, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC))


def blob(size: int, x: float, y: float, sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def centroid(img: np.ndarray) -> np.ndarray:
    w = img[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


@pytest.mark.parametrize("interp", ["bilinear", "bicubic", "area"])
def test_identity_transform_equals_a_plain_resize(interp):
    hr = face_like()
    p = DegradeParams(interpolation=interp)
    lr, meta = degrade(hr, np.zeros((68, 2)), np.random.default_rng(0), p, transform=False)
    assert lr.shape == (16, 16, 3)
    assert np.array_equal(lr, downsample(hr, 16, interp))
    assert (
        meta["angle"] == 0
        and meta["scale"] == 1
        and np.allclose(meta["matrix"], [[1, 0, 0], [0, 1, 0]])
    )
    # the transform switched on with zero-width ranges is the same thing
    p0 = DegradeParams(interpolation=interp, rotation=0, shift=0, scale=(1.0, 1.0))
    lr0, _ = degrade(hr, np.zeros((68, 2)), np.random.default_rng(5), p0, transform=True)
    assert np.array_equal(lr0, lr)


def test_bilinear_is_pillows_antialiased_bilinear():
    hr = face_like(3)
    want = np.asarray(Image.fromarray(hr).resize((16, 16), Image.Resampling.BILINEAR))
    assert np.array_equal(downsample(hr, 16, "bilinear"), want)
    # anti-aliased: a one-pixel checkerboard averages to grey, it does not alias to black/white
    checker = (np.indices((128, 128)).sum(0) % 2 * 255).astype(np.uint8)
    lr = downsample(np.repeat(checker[..., None], 3, 2), 16, "bilinear")
    assert np.abs(lr.astype(int) - 127).max() <= 2


@pytest.mark.parametrize("seed", range(6))
def test_landmarks_move_with_the_image(seed):
    # Dots rendered at landmark positions, pushed through the image warp, must end up where the
    # returned landmark coordinates say: in HR pixels and, after downsampling, in LR pixels.
    rng = np.random.default_rng(seed)
    p = DegradeParams(rotation=25, shift=0.08, scale=(0.8, 1.2))
    t = random_transform(np.random.default_rng(100 + seed), p, 128)
    for x, y in rng.uniform(40, 88, (3, 2)):
        img = blob(128, x, y)
        moved = warp(img, t["matrix"], "constant")
        want = apply_affine(np.array([[x, y]]), t["matrix"])[0]
        assert np.abs(centroid(moved) - want).max() < 0.05
    # through the full degrade step (its own draw) at LR resolution
    x, y = 61.3, 70.8
    lr, meta = degrade(blob(128, x, y, 6.0), np.array([[x, y]]), np.random.default_rng(seed), p)
    assert np.abs(centroid(lr) - meta["landmarks_lr"][0]).max() < 0.1


def test_scale_points_maps_pixel_centres():
    # the centre of HR pixels 0..7 is the centre of LR pixel 0 at 8x reduction
    assert np.allclose(scale_points(np.array([[3.5, 3.5]]), 128, 16), [[0.0, 0.0]])
    assert np.allclose(scale_points(np.array([[-0.5, 127.5]]), 128, 16), [[-0.5, 15.5]])


def test_draws_are_reproducible_and_bad_params_are_refused():
    hr = face_like(1)
    a = degrade(hr, np.zeros((68, 2)), np.random.default_rng(9), DegradeParams())
    b = degrade(hr, np.zeros((68, 2)), np.random.default_rng(9), DegradeParams())
    assert np.array_equal(a[0], b[0]) and a[1]["angle"] == b[1]["angle"]
    with pytest.raises(ValueError, match="interpolation"):
        DegradeParams.from_params({"interpolation": "nearest"})
    with pytest.raises(ValueError, match="scale"):
        DegradeParams.from_params({"scale": [1.2, 0.8]})
    with pytest.raises(KeyError, match="rotaton"):
        DegradeParams.from_params({"rotaton": 5})
