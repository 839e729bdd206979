import hashlib

import numpy as np
import pytest
from PIL import Image

from datagen.face.masks import (
    IRREGULAR_STYLES,
    N_BINS,
    MaskFolder,
    MaskFolderError,
    StrokeShape,
    bin_range,
    fill_hole,
    hole_ratio,
    irregular_mask,
    square_mask,
    strokes_mask,
)


@pytest.mark.parametrize("style", IRREGULAR_STYLES)
@pytest.mark.parametrize("b", range(N_BINS))
def test_irregular_hole_ratio_falls_in_its_bin(b, style):
    lo, hi = bin_range(b)
    for seed in range(40):
        mask, meta = irregular_mask(np.random.default_rng([seed, b]), 128, b, style)
        r = hole_ratio(mask)
        assert lo <= r < hi, (seed, r)
        assert meta["hole_ratio"] == r and meta["mask_bin"] == b and meta["mask_style"] == style
        assert mask.shape == (128, 128) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}


class TopOfBin:
    """A generator whose first ``uniform`` draw (the target ratio) is the very top of the range,
    where no whole pixel count is both >= the target and inside the bin."""

    def __init__(self, seed):
        self.rng, self.first = np.random.default_rng(seed), True

    def uniform(self, lo, hi, *rest):
        if self.first:
            self.first = False
            return np.nextafter(hi, lo)
        return self.rng.uniform(lo, hi, *rest)

    def __getattr__(self, name):
        return getattr(self.rng, name)


@pytest.mark.parametrize("style", IRREGULAR_STYLES)
def test_a_target_at_the_top_of_the_bin_still_lands_inside(style):
    for b in range(N_BINS):
        lo, hi = bin_range(b)
        for seed in range(3):
            r = hole_ratio(irregular_mask(TopOfBin([seed, b]), 128, b, style)[0])
            assert lo <= r < hi and r > hi - 0.01, (b, seed, r)


@pytest.mark.parametrize(
    "shape",
    [
        StrokeShape(strokes=1, width=40, width_spread=0, length_spread=0, specks=0),  # huge steps
        StrokeShape(strokes=1, width=1, width_spread=0, length_spread=0, specks=0),  # a thin walk
        StrokeShape(strokes=30, width=20, width_spread=1.5, length_spread=2, specks=60),
    ],
)
def test_extreme_stroke_shapes_still_land_in_every_bin(shape):
    for b in range(N_BINS):
        lo, hi = bin_range(b)
        for seed in range(4):
            r = hole_ratio(strokes_mask(np.random.default_rng([seed, b]), 128, b, shape))
            assert lo <= r < hi, (b, seed, r)


@pytest.mark.parametrize("style", IRREGULAR_STYLES)
def test_irregular_masks_are_seeded_and_varied(style):
    a = irregular_mask(np.random.default_rng(1), 128, 3, style)[0]
    assert a.tobytes() == irregular_mask(np.random.default_rng(1), 128, 3, style)[0].tobytes()
    assert not np.array_equal(a, irregular_mask(np.random.default_rng(2), 128, 3, style)[0])


def test_strokes_scale_with_the_mask_size():
    for b in (0, 5):
        lo, hi = bin_range(b)
        for size in (64, 256):
            r = hole_ratio(strokes_mask(np.random.default_rng(b), size, b))
            assert lo <= r < hi, (size, b, r)


def test_blobs_style_draws_the_masks_it_always_drew():
    # the earlier default: same seed, same bytes as before the strokes style existed
    h = hashlib.sha256()
    for b in range(N_BINS):
        for seed in range(5):
            h.update(irregular_mask(np.random.default_rng([seed, b]), 128, b, "blobs")[0].tobytes())
    assert h.hexdigest() == "3c6ced15dd7bd3eac6e73fdcd9ac1716b1e302175147013a435cf28028139f01"


def test_unknown_irregular_style_is_an_error():
    with pytest.raises(ValueError, match="style must be one of"):
        irregular_mask(np.random.default_rng(0), 128, 0, "zigzag")


def test_square_sides_stay_in_range_and_on_the_face():
    lm = np.array([[30.0, 35.0], [98.0, 35.0], [64.0, 118.0]])
    sides = []
    for seed in range(300):
        mask, meta = square_mask(np.random.default_rng(seed), 128, 16, 64, lm)
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert h == w and 16 <= w <= 64 and len(ys) == w * w
        cx, cy = xs.mean(), ys.mean()
        assert 30 - 32 <= cx <= 98 + 32 and 35 - 32 <= cy <= 118 + 32
        sides.append(w)
    assert min(sides) <= 18 and max(sides) >= 62  # the whole range is used
    with pytest.raises(ValueError, match="side range"):
        square_mask(np.random.default_rng(0), 128, 64, 16)


def test_fills():
    img = np.full((8, 8, 3), 200, np.uint8)
    img[:4] = 100
    mask = np.zeros((8, 8), np.uint8)
    mask[6:, 6:] = 255
    rng = np.random.default_rng(0)
    assert (fill_hole(img, mask, "zeros", rng)[6:, 6:] == 0).all()
    mean = fill_hole(img, mask, "mean", rng)
    kept = img[mask == 0].mean(0)
    assert np.abs(mean[7, 7] - kept).max() <= 0.5
    noisy = fill_hole(img, mask, "noise", rng)
    assert not (noisy[6:, 6:] == 200).all() and (noisy[mask == 0] == img[mask == 0]).all()
    with pytest.raises(ValueError, match="occlusion.fill"):
        fill_hole(img, mask, "blur", rng)


def test_mask_folder_errors_are_specific(tmp_path):
    with pytest.raises(MaskFolderError, match="does not exist"):
        MaskFolder(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no masks here")
    with pytest.raises(MaskFolderError, match="holds no image files"):
        MaskFolder(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(bad / "00001.png")
    (bad / "00002.png").write_text("not a png")
    with pytest.raises(MaskFolderError, match="00002.png"):
        MaskFolder(bad)
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    Image.fromarray(noise).save(truncated / "a.png")
    data = (truncated / "a.png").read_bytes()
    (truncated / "a.png").write_bytes(
        data[: len(data) // 2]
    )  # header survives, pixel data does not
    folder = MaskFolder(truncated)
    with pytest.raises(MaskFolderError, match="a.png"):
        folder.sample(np.random.default_rng(0), 128)


def test_folder_masks_threshold_crop_and_resize(tmp_path):
    m = np.zeros((200, 300), np.uint8)
    m[:, :150] = 255  # left half is hole
    Image.fromarray(m).save(tmp_path / "half.png")
    folder = MaskFolder(tmp_path)
    ratios = []
    for seed in range(30):
        mask, meta = folder.sample(np.random.default_rng(seed), 128)
        assert mask.shape == (128, 128) and set(np.unique(mask)) <= {0, 255}
        assert meta["mask_kind"] == "folder" and meta["mask_file"] == "half.png"
        ratios.append(meta["hole_ratio"])
    assert 0.2 < np.mean(ratios) < 0.8 and min(ratios) < max(ratios)


def test_nvidia_masks_read_as_their_own_ratio(shared):
    folder = MaskFolder(shared / "data" / "pconv-masks" / "masks")
    assert len(folder.files) == 3000
    first, last = folder.ratio_of_file(0, 128), folder.ratio_of_file(len(folder.files) - 1, 128)
    assert first < 0.1 < 0.4 < last  # ratios rise with the index, as the set's readme says
