import json

import numpy as np
import pytest

from datagen.reports import pose_reality


def test_reality_check_on_two_people(shared, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = pose_reality.main(
        [
            "--london",
            str(shared / "data" / "london-faces"),
            "--limit",
            "2",
            "--workers",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    s = json.loads(out.read_text())["summary"]
    for side, sign in (("left", -1), ("right", 1)):
        v = s[side]
        assert v["views"] == 2
        # real 3/4 views are turned 30-60 degrees; a render asked for 40 is estimated near it
        assert 30 < sign * v["real_yaw"]["mean"] < 60
        assert abs(v["fixed_estimated"]["mean"] - sign * 40) < 12
        # same person through our render: within dlib's threshold, and closer than strangers
        assert v["d_render_real"]["mean"] < pose_reality.SAME_PERSON
        assert v["d_render_real"]["mean"] < v["d_render_other"]["mean"]
    assert "dlib descriptor distance" in capsys.readouterr().out
    # per target yaw: the whole-head turn keeps the picture in one piece, dlib finds the face
    # at +-22 and +-40 with its landmarks near ours
    by_yaw = s["by_yaw"]
    assert set(by_yaw) == {"-75", "-55", "-40", "-22", "+22", "+40", "+55", "+75"}
    for yaw, v in by_yaw.items():
        assert v["renders"] == 2 and v["tears_max"] < 0.005, yaw
        assert v["jumps"]["mean"] >= v["tears"]["mean"]  # occlusion edges are jumps, not tears
        if abs(float(yaw)) <= 40:
            assert v["detection_rate"] == 1.0, yaw
            assert v["nrmse_inner"]["mean"] < 0.08, yaw
    assert abs(s["front_yaw"]["mean"]) < 15


def test_outer_eye_nrmse_is_rms_over_the_outer_corner_distance():
    ours = np.zeros((68, 2))
    ours[36], ours[45] = (0, 0), (50, 0)
    found = ours.copy()
    found[17:] += (3, 4)  # 5 px off on the inner points
    assert pose_reality.outer_eye_nrmse(found, ours, slice(17, 68)) == pytest.approx(0.1)
    assert pose_reality.outer_eye_nrmse(found, ours) == pytest.approx(0.1 * np.sqrt(51 / 68))


def test_tears_picture_marks_renders(shared, tmp_path):
    out = tmp_path / "t.png"
    pose_reality.write_tears(shared / "data" / "london-faces", ["001"], [-40.0, 40.0], "head", out)
    from PIL import Image

    img = np.asarray(Image.open(out))
    assert img.shape == (256, 3 * 256, 3)


def test_missing_views_are_a_clear_error(tmp_path, capsys):
    assert pose_reality.main(["--london", str(tmp_path)]) == 2
    assert "3/4 views" in capsys.readouterr().err
