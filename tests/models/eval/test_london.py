"""The London 3/4-view evaluation (real turned faces): file names, people, the yaw-template
crop, errors, and a run on two people of ``../shared/data/london-faces`` (skipped when it is
absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.core.params import load_params
from datagen.face import align
from models.eval import london
from models.eval.__main__ import main
from models.eval.protocol import KEYS
from tests.helpers import REPO, SHARED, small_faces, small_fits

LONDON = SHARED / "data" / "london-faces"
PEOPLE = ["012", "014"]  # test-split people of the default run
SHARDS = {"samples_per_shard": 8}


def _params() -> dict:
    return load_params(REPO / "params.yaml")


def _templates() -> dict[float, np.ndarray]:
    """Toy yaw templates: the frontal template with its inner face squeezed toward one side."""
    tpl = align.template_pixels(128)
    out = {}
    for yaw in (-40.0, 40.0):
        t = tpl.copy()
        c = t[:, 0].mean()
        t[:, 0] = c + (t[:, 0] - c) * np.cos(np.radians(yaw)) + np.sign(yaw) * 8
        t[36:48, 0] += np.sign(yaw) * np.array([3, 2, 1, 0, 1, 2, 0, 1, 2, 3, 2, 1])  # eyes
        out[yaw] = t
    return out


# --------------------------------------------------------------------------- no shared data


def test_parse_name():
    assert london.parse_name("012_04.jpg") == ("012", "04")
    assert london.parse_name("139_09.PNG") == ("139", "09")
    assert london.parse_name("README.md") is None and london.parse_name("012_4.jpg") is None


def test_list_people_finds_every_view_in_any_layout_and_refuses_bad_folders(tmp_path):
    for rel in ("a/012_02.jpg", "b/012_03.jpg", "012_09.jpg", "c/d/014_04.jpg",
                "a/012_01.jpg", "a/099_02.jpg", "notes.txt"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = london.list_people(tmp_path, ["012", "014"])
    assert {p: [f.name for f in fs] for p, fs in found.items()} == {
        "012": ["012_02.jpg", "012_03.jpg", "012_09.jpg"],  # the profile view 01 is not used
        "014": ["014_04.jpg"],
    }
    with pytest.raises(FileNotFoundError, match="no London photos of 013"):
        london.list_people(tmp_path, ["012", "013"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        london.list_people(tmp_path / "nope", ["012"])
    with pytest.raises(ValueError, match="no people"):
        london.list_people(tmp_path, [])
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "012_02.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="twice"):
        london.list_people(tmp_path, ["012"])


def test_match_yaw_picks_the_template_and_undoes_the_photo_similarity():
    templates = _templates()
    # a "photo" of the +40 template under a known similarity (scale 2.5, 7 degrees, shift)
    a = np.radians(7)
    m = np.array(
        [[2.5 * np.cos(a), -2.5 * np.sin(a), 310.0], [2.5 * np.sin(a), 2.5 * np.cos(a), 95]]
    )
    photo = align.apply_affine(templates[40.0], m)
    yaw, matrix, residual = london.match_yaw(photo, templates)
    assert yaw == 40.0 and residual < 1e-9
    back = align.apply_affine(photo, matrix)
    assert np.allclose(back[align.ALIGN_POINTS], templates[40.0][align.ALIGN_POINTS], atol=1e-6)
    other = london.match_yaw(align.apply_affine(templates[-40.0], m), templates)
    assert other[0] == -40.0
    with pytest.raises(ValueError, match="degenerate"):
        london.match_yaw(np.zeros((68, 2)), templates)


def test_people_come_from_the_faces_test_split_and_bad_datasets_are_named(tmp_path_factory):
    faces = small_faces(tmp_path_factory, ("001", "002", "003"), 0.34, SHARDS)
    people = london.test_people(faces)
    assert len(people) == 1 and people[0] in {"001", "002", "003"}
    with pytest.raises(FileNotFoundError, match="not a faces dataset"):
        london.test_people(tmp_path_factory.mktemp("empty"))
    with pytest.raises(FileNotFoundError, match="not a pair set"):
        london.yaw_templates(tmp_path_factory.mktemp("empty"))
    with pytest.raises(ValueError, match="not a pose pair set"):
        london.yaw_templates(faces)


# --------------------------------------------------------------------------- two real people


@pytest.fixture(scope="module")
def pose_pairs(tmp_path_factory) -> Path:
    if not LONDON.is_dir():
        pytest.skip(f"{LONDON} not present (the London set's 3/4 views; a user's own path)")
    from datagen.stages.pairs_pose import build_pairs_pose

    faces = small_faces(tmp_path_factory, ("001", "002", "003"), 0.34, SHARDS)
    fits = small_fits(tmp_path_factory, faces, SHARDS)
    out = tmp_path_factory.mktemp("pose")
    params = {"yaws": [-40, -22, 22, 40]}
    build_pairs_pose(faces, fits, out, params, {}, SHARDS, 0, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def work(pose_pairs, tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("london")


@pytest.fixture(scope="module")
def record(work, pose_pairs) -> dict:
    return london.evaluate_london(
        LONDON, "bicubic", params=_params(), people=PEOPLE, pairs_dir=pose_pairs,
        work_dir=work, workers=1, progress=False,
    )  # fmt: skip


def test_the_templates_are_the_train_pairs_mean_landmarks(pose_pairs):
    templates, size = london.yaw_templates(pose_pairs)
    assert sorted(templates) == [-40.0, -22.0, 22.0, 40.0] and size == 128
    # turning to the right moves the nose tip right of the eyes' midpoint, left to the left
    for yaw, t in templates.items():
        offset = t[30, 0] - t[36:48, 0].mean()
        assert np.sign(offset) == np.sign(yaw) and abs(offset) > 2


def test_every_view_is_scored_against_the_frontal_photo_of_its_expression(record):
    r = record
    assert {"method", "task", "n", "by_side", "by_expression", "by_view", "by_yaw"} | set(
        KEYS
    ) <= set(r)
    json.dumps(r, allow_nan=False)
    assert r["method"] == "bicubic" and r["task"] == "pose" and r["parameters"] == 0
    assert r["people_scored"] == PEOPLE and r["images"] == 12 and r["views"] == 8
    assert r["faces"] + r["rejects"] == 12 and r["rejects"] == 0
    assert r["n"] == 8 and r["skipped_without_target"] == 0
    assert set(r["by_view"]) == {"left-neutral", "left-smiling", "right-neutral", "right-smiling"}
    assert all(v["n"] == 2 for v in r["by_view"].values())
    # the London left 3/4 views match a negative yaw, the right ones a positive yaw, at 40
    assert r["by_yaw"]["-40"]["n"] == 4 and r["by_yaw"]["40"]["n"] == 4
    assert r["gallery_size"] == {"neutral": 2, "smiling": 2} and r["rank5"] is None
    assert 8 < r["psnr"] < 30 and 0 < r["ssim"] < 1 and 0 < r["identity_distance"] < 1.2
    # the real HR view is the same person as its target: nearer than any 16 px upscale
    assert r["hr_view_identity_distance"] < min(0.6, r["identity_distance"])
    assert r["yaw_residual"] < 0.15


def test_probes_are_reproducible_and_a_perfect_output_scores_perfectly(work, pose_pairs):
    from models.eval import real_photos

    params = _params()
    files = london.list_people(LONDON, PEOPLE)
    photos = {f"{p}/{f.name}": f for p, fs in files.items() for f in fs}
    rows, _ = real_photos.ingest(files, work, params, 0.0, 1, progress=False)
    views, fronts = london.split_rows(rows)
    keys = sorted(fronts)
    templates, size = london.yaw_templates(pose_pairs)
    a = london.make_probes(views, photos, keys, templates, size, params, progress=False)
    b = london.make_probes(views, photos, keys, templates, size, params, progress=False)
    assert a.lr.shape == (8, 16, 16, 3) and (a.lr == b.lr).all()  # seeded per view
    assert [keys[t] for t in a.target_of] == list(zip(a.people, a.expressions, strict=True))
    targets = np.stack([fronts[k]["hr"].permute(1, 2, 0).numpy() for k in keys])
    lms = np.stack([np.asarray(fronts[k]["landmarks"], np.float64) for k in keys])
    perfect, _ = london.score(targets[a.target_of], a, targets, lms, keys, progress=False)
    assert (perfect["psnr"] == 100).all() and (perfect["rank1"] == 1).all()
    assert np.allclose(perfect["identity_distance"], 0, atol=1e-5)


def test_a_vividgan_checkpoint_and_the_cli(work, record, pose_pairs, tmp_path, capsys):
    from models.train.model_file import save_model
    from models.train.model_loader import BUILDERS

    arch = {"width": 16, "encoder_blocks": 1, "unet_width": 4, "locator_width": 8,
            "fine_width": 8, "hourglass_width": 8}  # fmt: skip
    torch.manual_seed(0)
    net = BUILDERS["vividgan"](arch, 16)
    ckpt = save_model(net, tmp_path / "vividgan", "vividgan", "pose", arch, 16)
    out = tmp_path / "london.json"
    argv = ["london", "--folder", str(LONDON), "--checkpoint", str(ckpt), "--people",
            ",".join(PEOPLE), "--out", str(out), "--markdown", "--pairs", str(pose_pairs),
            "--work", str(work), "--workers", "1", "--device", "cpu",
            "--grid", str(tmp_path / "grid.png")]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| side left |" in table and "method vividgan" in table
    got = json.loads(out.read_text())
    assert got["method"] == "vividgan" and got["parameters"] == sum(
        p.numel() for p in net.parameters()
    )
    assert got["n"] == record["n"] and got["psnr"] != record["psnr"]
    assert (tmp_path / "grid.png").is_file()
    # an illumination checkpoint is refused before any photo is read
    from tests.models.eval.test_yale import _checkpoint

    bad = _checkpoint(tmp_path / "ill", "illumination")
    argv[argv.index("--checkpoint") + 1] = str(bad)
    assert main(argv) == 2 and "pose" in capsys.readouterr().err
