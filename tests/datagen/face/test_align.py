import numpy as np
import pytest

from datagen.core.images import load_rgb
from datagen.face import align
from datagen.face.landmarks import DlibLandmarker, FaceDetector


def test_template_is_symmetric_and_level():
    t = align.TEMPLATE_68
    mirrored = t[align.IBUG68_MIRROR] * [-1, 1] + [1, 0]
    assert np.abs(mirrored - t).max() < 1e-3
    left, right = t[36:42].mean(0), t[42:48].mean(0)
    assert abs(left[1] - right[1]) < 1e-3
    assert np.hypot(*(right - left)) == pytest.approx(0.30, abs=1e-3)
    assert ((t > 0.1) & (t < 0.95)).all()


@pytest.mark.parametrize("size", [128, 256])
def test_known_similarity_is_undone_exactly(size):
    # Template -> arbitrary similarity (rotation, scale, shift) -> alignment must map it back.
    a, s, t = np.deg2rad(23.0), 3.7, np.array([410.0, -35.0])
    r = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    src = align.template_pixels(size) @ r.T + t
    m = align.estimate_alignment(src, size)
    back = align.apply_affine(src, m)
    assert np.abs(back - align.template_pixels(size)).max() < 1e-6
    assert align.alignment_error(back, size) < 1e-8


def test_rescale_alignment_matches_direct_estimate():
    rng = np.random.default_rng(0)
    src = align.template_pixels(100) * 2.3 + rng.normal(0, 2.0, (68, 2)) + 50
    m128 = align.estimate_alignment(src, 128)
    m256 = align.estimate_alignment(src, 256)
    assert np.allclose(align.rescale_alignment(m128, 128, 256), m256, atol=1e-9)


def test_degenerate_landmarks_raise_value_error():
    with pytest.raises(ValueError, match="degenerate"):
        align.estimate_alignment(np.zeros((68, 2)), 128)


def test_warp_crop_puts_a_dot_where_the_matrix_says():
    img = np.zeros((600, 500, 3), np.uint8)
    img[300:303, 200:203] = 255  # a 3x3 dot centred on pixel (201, 301)
    m = align.estimate_alignment(align.template_pixels(128) * 1.9 + 80, 128)
    crop = align.warp_crop(img, m, 128, "constant")
    y, x = np.unravel_index(np.argmax(crop[..., 0].astype(float)), crop.shape[:2])
    ex, ey = align.apply_affine(np.array([[201.0, 301.0]]), m)[0]
    assert abs(x - ex) <= 1 and abs(y - ey) <= 1


def test_real_faces_align_close_to_the_template(bundled_photos):
    # Real frontal faces: after alignment the inner landmarks sit within a few percent of the
    # inter-ocular distance of the template (the residual is genuine face-shape variation).
    det, lmk = FaceDetector(), DlibLandmarker()
    errors = []
    for p in bundled_photos[::17]:
        rgb = load_rgb(p, 10**8, 32)
        lm = lmk(rgb, det.detect(rgb)[0])
        m = align.estimate_alignment(lm, 128)
        errors.append(align.alignment_error(align.apply_affine(lm, m), 128))
    print(
        f"alignment NRMSE over {len(errors)} bundled faces: mean {np.mean(errors):.4f} max {np.max(errors):.4f}"
    )
    assert np.mean(errors) < 0.06
    assert np.max(errors) < 0.12
