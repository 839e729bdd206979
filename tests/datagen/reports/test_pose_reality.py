import json

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


def test_missing_views_are_a_clear_error(tmp_path, capsys):
    assert pose_reality.main(["--london", str(tmp_path)]) == 2
    assert "3/4 views" in capsys.readouterr().err
