import shutil

import pytest

from datagen.core import code
from tests.helpers import REPO

STAGES = ("faces", "pairs_occlusion", "fits", "pairs_pose", "rain_train", "pairs_illumination")


@pytest.fixture
def tree(tmp_path):
    """A copy of the project's Python source, to edit."""
    for pkg in ("datagen", "models", "pipelines"):
        shutil.copytree(
            REPO / pkg,
            tmp_path / pkg,
            ignore=shutil.ignore_patterns("bundled", "__pycache__"),
        )
    return tmp_path


def fingerprints(root):
    return {s: code.code_fingerprint(f"datagen.stages.{s}", root) for s in STAGES}


def touch(path):
    path.write_text(path.read_text() + "\n# edited\n")


def test_closure_holds_what_a_stage_imports_and_nothing_else():
    files = {
        p.relative_to(REPO).as_posix()
        for p in code.import_closure("datagen.stages.pairs_occlusion")
    }
    assert {"datagen/face/masks.py", "datagen/face/degrade.py", "datagen/core/shards.py"} <= files
    assert "datagen/__init__.py" in files and "datagen/stages/__init__.py" in files
    assert not any(
        f.startswith(("datagen/bench", "datagen/reports", "datagen/rain")) for f in files
    )
    assert "datagen/stages/pairs_pose.py" not in files
    # lazy imports inside functions count: rain_quality imports relight inside a function
    report = {p.name for p in code.import_closure("datagen.reports.rain_quality")}
    assert "relight.py" in report
    with pytest.raises(ModuleNotFoundError):
        code.import_closure("datagen.no_such_module")


def test_editing_a_report_a_benchmark_or_another_stage_leaves_a_stage_valid(tree):
    before = fingerprints(tree)
    touch(tree / "datagen" / "reports" / "rain_quality.py")
    touch(tree / "datagen" / "bench" / "pose.py")
    touch(tree / "datagen" / "tools" / "shards.py")
    assert fingerprints(tree) == before
    touch(tree / "datagen" / "stages" / "pairs_pose.py")
    after = fingerprints(tree)
    assert after["pairs_pose"] != before["pairs_pose"]
    assert {s: after[s] for s in STAGES if s != "pairs_pose"} == {
        s: before[s] for s in STAGES if s != "pairs_pose"
    }


def test_editing_imported_code_marks_exactly_its_importers_stale(tree):
    before = fingerprints(tree)
    touch(tree / "datagen" / "face" / "masks.py")
    after = fingerprints(tree)
    changed = {s for s in STAGES if after[s] != before[s]}
    assert changed == {"pairs_occlusion"}
    touch(tree / "models" / "archs" / "vgg.py")  # RaIN's encoder
    again = fingerprints(tree)
    assert {s for s in STAGES if again[s] != after[s]} == {"rain_train", "pairs_illumination"}
    # the 3-D model's files are part of the code of every stage that fits or renders with it
    with open(tree / "datagen" / "assets" / "surrey-face-model" / "ibug_to_sfm.txt", "a") as f:
        f.write("\n")
    model = fingerprints(tree)
    assert {s for s in STAGES if model[s] != again[s]} == {
        "fits",
        "pairs_pose",
        "rain_train",
        "pairs_illumination",  # its physical source relights from the fits
    }
    touch(tree / "datagen" / "core" / "shards.py")
    assert all(v != model[s] for s, v in fingerprints(tree).items())
