import numpy as np
import pytest

from datagen.core.images import load_rgb
from datagen.face.landmarks import DlibLandmarker, FaceDetector
from datagen.face3d import morphable
from tests.helpers import BUNDLED


@pytest.fixture(scope="module")
def face_landmarks() -> tuple[np.ndarray, tuple[int, int]]:
    rgb = load_rgb(BUNDLED / "neutral_front" / "004_03.jpg", 10**8, 32)
    lm = DlibLandmarker()(rgb, FaceDetector().detect(rgb)[0])
    return lm.astype(np.float64), (rgb.shape[1], rgb.shape[0])


def test_model_loads_with_blendshapes_and_mappings():
    m = morphable.load_model()
    assert m.model.get_shape_model().get_num_principal_components() == 63
    assert len(m.model.get_expression_model()) == 6
    assert len(m.ibug_to_vertex) >= 45  # inner points; the jaw line is fitted as a contour


def test_fit_on_a_real_face_reprojects_close_to_its_landmarks(face_landmarks):
    lm, size = face_landmarks
    f = morphable.fit(lm, size)
    iod = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
    print(f"fit error {f.error_px:.2f} px, {f.error_px / iod:.3f} of the eye distance")
    assert f.error_px / iod < 0.06
    yaw, pitch, roll = f.pose.get_yaw_pitch_roll()
    assert abs(yaw) < 12 and abs(roll) < 8  # a front view
    # the projected nose tip (iBUG 30) is where the landmark is
    m = morphable.load_model()
    nose = f.project(np.asarray(f.mesh.vertices)[[m.ibug_to_vertex[30]]])[0]
    assert np.linalg.norm(nose - lm[30]) < 0.1 * iod


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((68, 2)),
        np.full((68, 2), np.nan),
        np.c_[np.linspace(0, 100, 68), np.full(68, 50.0)],  # all on one line
        np.zeros((5, 2)),
    ],
    ids=["zeros", "nan", "collinear", "five-points"],
)
def test_degenerate_landmarks_are_rejected_with_a_reason(bad):
    with pytest.raises(morphable.FitRejected) as e:
        morphable.fit(bad, (256, 256))
    assert e.value.reason == "degenerate landmarks" and e.value.detail
