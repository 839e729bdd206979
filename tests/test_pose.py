import numpy as np
import pytest

from datagen import align, pose
from datagen.images import load_rgb
from datagen.landmarks import DlibLandmarker, FaceDetector

from .conftest import BUNDLED


@pytest.fixture(scope="module")
def source():
    rgb = load_rgb(BUNDLED / "neutral_front" / "010_03.jpg", 10**8, 32)
    lm = DlibLandmarker()(rgb, FaceDetector().detect(rgb)[0])
    m = align.estimate_alignment(lm, 256)
    return pose.prepare(align.warp_crop(rgb, m, 256), align.apply_affine(lm, m))


def test_render_at_the_fitted_yaw_reproduces_the_input(source):
    yaw0 = float(source.fit.pose.get_yaw_pitch_roll()[0])
    out, lm, mask = pose.render_yaw(source, yaw0)
    assert out.shape == source.image.shape and mask.mean() > 0.3
    diff = out[mask].astype(float) - source.image[mask].astype(float)
    psnr = 10 * np.log10(255**2 / (diff**2).mean())
    print(f"render at the fitted yaw: PSNR {psnr:.1f} dB inside the face")
    assert psnr > 30
    iod = np.linalg.norm(source.fit.landmarks[42:48].mean(0) - source.fit.landmarks[36:42].mean(0))
    err = np.linalg.norm(lm - source.fit.landmarks, axis=1)
    assert err[17:].mean() < 0.08 * iod  # inner points: the fit's own reprojection error


def test_turning_moves_the_nose_the_right_way(source):
    yaw0 = float(source.fit.pose.get_yaw_pitch_roll()[0])
    _, left, _ = pose.render_yaw(source, yaw0 - 40)
    _, right, _ = pose.render_yaw(source, yaw0 + 40)

    # the nose tip (30) swings further than the eye corners' midpoint, to opposite sides
    def nose_offset(lm):
        return lm[30, 0] - (lm[39, 0] + lm[42, 0]) / 2

    assert nose_offset(left) * nose_offset(right) < 0
    assert abs(nose_offset(left)) > 5 and abs(nose_offset(right)) > 5


def test_mirror_fill_takes_unseen_texels_from_the_other_side():
    tex = np.zeros((8, 8, 4), np.uint8)
    tex[:, :4, :3] = 200
    tex[:, :4, 3] = 255  # only the left half was seen
    out = pose.mirror_fill(tex)
    assert (out[:, 4:] == 200).all()
