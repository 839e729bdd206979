"""The Yale B evaluation (real side-lit photos): file names, bins, errors, the guide, and a run
on two subjects of ``../shared/data/yale-b-cropped`` (skipped when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from datagen.core.params import load_params
from models.eval import real_photos, yale
from models.eval.__main__ import main
from models.eval.protocol import KEYS, run_method, takes_guide
from models.train.checkpoints import CheckpointError
from tests.helpers import REPO, SHARED, small_faces

YALE = SHARED / "data" / "yale-b-cropped"
SUBJECTS = 2


def _params() -> dict:
    return load_params(REPO / "params.yaml")


def _checkpoint(path: Path, task: str) -> Path:
    """A tiny untrained baseline saved as a model file of ``task``."""
    from models.archs.baseline import BaselineConfig, BaselineSR
    from models.train.model_file import save_model

    arch = {"width": 8, "blocks": 0}
    torch.manual_seed(0)
    return save_model(BaselineSR(BaselineConfig(**arch)), path, "baseline", task, arch, 16)


# --------------------------------------------------------------------------- no shared data


def test_parse_name():
    n = yale.parse_name("yaleB05_P00A-035E+15.png")
    assert n == yale.YaleName("yaleB05", 0, -35, 15) and not n.is_target
    assert yale.parse_name("yaleB01_P00A+130E+20.pgm") == yale.YaleName("yaleB01", 0, 130, 20)
    assert yale.parse_name("yaleB01_P00A-110E-20.png").elevation == -20
    assert yale.parse_name("yaleB39_P00A+000E+00.png").is_target
    assert yale.parse_name("yaleB39_P00A-000E+00.png").is_target  # a signed zero is still 0
    assert yale.parse_name("yaleB01_P03A+000E+00.png").pose == 3
    for other in ("yaleB01_P00_Ambient.pgm", "README.md", "yaleB01_P00A+000E+00", "x.png"):
        assert yale.parse_name(other) is None


def test_azimuth_bins():
    labels = {a: yale.azimuth_bin(a) for a in (0, 5, -15, 19.9, 20, -35, 50, -70, 85, 110, -130)}
    assert labels == {
        0: "0-20", 5: "0-20", -15: "0-20", 19.9: "0-20", 20: "20-50", -35: "20-50",
        50: "50-85", -70: "50-85", 85: "85-130", 110: "85-130", -130: "85-130",
    }  # fmt: skip
    assert yale.azimuth_bin(131) is None  # beyond Yale's lamps: in no bin
    assert [f"{lo}-{hi}" for lo, hi in yale.AZIMUTH_BINS] == ["0-20", "20-50", "50-85", "85-130"]


def test_photo_box():
    # no rotation: a photo with a 10 px margin, scaled by 2 and moved by (-30, -20): its
    # pixels 10..49 (x) and 10..69 (y) land on -10..68 and 0..118
    m = np.array([[2.0, 0, -30], [0, 2.0, -20]])
    assert real_photos.photo_box(m, 10, 40, 60, 128) == (0, 0, 69, 119)
    assert real_photos.photo_box(m, 10, 80, 60, 128) == (0, 0, 128, 119)  # clipped to the crop
    assert real_photos.photo_box(np.array([[1.0, 0, 0], [0, 1.0, 0]]), 0, 20, 30, 64) == (
        0,
        0,
        20,
        30,
    )
    c, s = np.cos(0.1), np.sin(0.1)  # a slight rotation: the box shrinks, never overhangs
    rot = np.array([[c, -s, 20], [s, c, 10]])
    box = real_photos.photo_box(rot, 0, 40, 40, 128)
    assert box == (20, 14, 55, 49)
    corners = np.array([[box[0], box[1]], [box[2] - 1, box[1]], [box[0], box[3] - 1]], float)
    back = (corners - rot[:, 2]) @ np.linalg.inv(rot[:, :2]).T  # crop -> photo pixels
    assert (back >= 0).all() and (back <= 39).all()
    with pytest.raises(ValueError, match="under 8 x 8"):
        real_photos.photo_box(np.array([[1.0, 0, 0], [0, 1.0, 0]]), 0, 4, 30, 64)


def test_list_subjects_and_its_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        yale.list_subjects(tmp_path / "nowhere")
    (tmp_path / "README.md").write_text("not a face")
    (tmp_path / "yaleB01").mkdir()
    (tmp_path / "yaleB01" / "yaleB01_P00_Ambient.png").write_bytes(b"")
    (tmp_path / "yaleB01" / "yaleB01_P01A+000E+00.png").write_bytes(b"")  # another pose
    with pytest.raises(FileNotFoundError, match="no Yale B P00A"):
        yale.list_subjects(tmp_path)
    for s in ("yaleB01", "yaleB02", "yaleB03"):
        (tmp_path / s).mkdir(exist_ok=True)
        for a in ("+000", "-035"):
            (tmp_path / s / f"{s}_P00A{a}E+00.png").write_bytes(b"")
    got = yale.list_subjects(tmp_path, 2)
    assert list(got) == ["yaleB01", "yaleB02"]
    assert [f.name for f in got["yaleB01"]] == [
        "yaleB01_P00A+000E+00.png",
        "yaleB01_P00A-035E+00.png",
    ]
    with pytest.raises(ValueError):
        yale.list_subjects(tmp_path, 0)


class _Guided(nn.Module):
    """Output = the guide's mean added to a nearest x8 of the input: shows what guide came in."""

    def forward(self, lr: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(lr, scale_factor=8)
        return (up + guide.mean((1, 2, 3), keepdim=True)).clamp(-1, 1)


class _Plain(nn.Module):
    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(lr, scale_factor=8)


def test_run_method_gives_a_guide_to_a_network_that_takes_one():
    lr = torch.zeros(5, 3, 2, 2)
    guides = torch.linspace(-0.5, 0.5, 5).view(5, 1, 1, 1).expand(5, 3, 16, 16)
    assert takes_guide(_Guided()) and not takes_guide(_Plain())
    out, fn = run_method(_Guided(), lr, 16, torch.device("cpu"), 2, guides)  # across batches
    assert np.array_equal(out[:, 0, 0, 0], np.round((guides[:, 0, 0, 0].numpy() + 1) * 127.5))
    one, _ = run_method(_Guided(), lr, 16, torch.device("cpu"), 2, guides[3:4])  # one for all
    assert (one == out[3]).all()
    assert fn(lr[:1].expand(4, -1, -1, -1)).shape == (4, 3, 16, 16)  # timed with a guide
    with pytest.raises(ValueError, match="takes a guide"):
        run_method(_Guided(), lr, 16, torch.device("cpu"), 2)
    with pytest.raises(ValueError, match="3 guide faces for 5"):
        run_method(_Guided(), lr, 16, torch.device("cpu"), 2, guides[:3])
    plain, _ = run_method(_Plain(), lr, 16, torch.device("cpu"), 2, guides)  # ignored
    assert (plain == 128).all()


def test_checkpoints_are_checked_before_any_image_is_read(tmp_path):
    pose = _checkpoint(tmp_path / "pose", "pose")
    nowhere = tmp_path / "no-yale-here"  # never reached: the checkpoint is refused first
    with pytest.raises(CheckpointError, match="pose task, not illumination"):
        yale.evaluate_yale(nowhere, None, pose, params=_params())
    with pytest.raises(ValueError, match="needs a checkpoint"):
        yale.evaluate_yale(nowhere, "baseline", params=_params())
    with pytest.raises(ValueError, match="bicubic takes no checkpoint"):
        yale.evaluate_yale(nowhere, "bicubic", pose, params=_params())
    method, model, info = yale.load_method(None, _checkpoint(tmp_path / "ill", "illumination"))
    assert method == "baseline" and info["parameters"] == sum(p.numel() for p in model.parameters())


def test_cli_errors(tmp_path, capsys):
    assert (
        main(["yale", "--folder", str(tmp_path / "none"), "--out", str(tmp_path / "x.json")]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    pose = _checkpoint(tmp_path / "pose", "pose")
    argv = [
        "yale",
        "--folder",
        str(tmp_path),
        "--checkpoint",
        str(pose),
        "--out",
        str(tmp_path / "x.json"),
    ]
    assert main(argv) == 2
    assert "not illumination" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    shards = {"encoding": "png", "samples_per_shard": 8}
    return small_faces(tmp_path_factory, ("001", "002", "003"), 0.34, shards)


def test_guide_is_the_first_train_face(faces, tmp_path):
    import polars as pl

    from datagen.core.shards import read_index

    guide, face_id = yale.pick_guide(faces)
    index = read_index(faces)
    assert face_id == min(index.filter(pl.col("split") == "train")["face_id"].to_list())
    assert guide.shape == (1, 3, 128, 128) and guide.min() >= -1 and guide.max() <= 1
    with pytest.raises(FileNotFoundError, match="not a faces dataset"):
        yale.pick_guide(tmp_path / "no-faces")


# --------------------------------------------------------------------------- two real subjects


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    if not YALE.is_dir():
        pytest.skip(f"{YALE} not present (Extended Yale B cropped; a user's own path)")
    return tmp_path_factory.mktemp("yale")


@pytest.fixture(scope="module")
def ingested(work):
    files = yale.list_subjects(YALE, SUBJECTS)
    rows, rejects = yale.ingest(files, work, _params(), yale.DEFAULT_MARGIN, 1, progress=False)
    return files, rows, rejects


@pytest.fixture(scope="module")
def record(work, ingested) -> dict:
    return yale.evaluate_yale(
        YALE, "bicubic", params=_params(), subjects=SUBJECTS, work_dir=work, workers=1,
        progress=False,
    )  # fmt: skip


def test_every_frontal_image_is_ingested_or_rejected(ingested):
    files, rows, rejects = ingested
    assert list(files) == ["yaleB01", "yaleB02"] and all(len(f) == 64 for f in files.values())
    sources = {r["source"] for r in rows} | {r["source"] for r in rejects}
    assert sources == {f"{s}/{f.name}" for s, fs in files.items() for f in fs}
    assert len(rows) + len(rejects) == 128
    assert {r["reason"] for r in rejects} <= {"no face", "face too small", "alignment failed"}
    assert all(r["hr"].shape == (3, 128, 128) and r["hr"].dtype == torch.uint8 for r in rows)


def test_the_target_is_the_frontally_lit_face(ingested):
    files, rows, _ = ingested
    targets = yale.subject_targets(rows)
    assert {s: r["source"] for s, r in targets.items()} == {
        s: f"{s}/{s}_P00A+000E+00.png" for s in files
    }
    subjects = list(targets)
    probes = yale.make_probes(rows, subjects, _params(), progress=False)
    assert probes.lr.shape == (len(rows), 16, 16, 3) and probes.lr.dtype == np.uint8
    again = yale.make_probes(rows, subjects, _params(), progress=False)
    assert (again.lr == probes.lr).all()  # seeded per image
    assert [subjects[t] for t in probes.target_of] == probes.subjects
    imgs = np.stack([targets[s]["hr"].permute(1, 2, 0).numpy() for s in subjects])
    lms = np.stack([np.asarray(targets[s]["landmarks"], np.float64) for s in subjects])
    # an output equal to its subject's A+000E+00 face scores perfectly against the target
    boxes = [targets[s]["photo_box"] for s in subjects]
    perfect = yale.score(imgs[probes.target_of], probes, imgs, lms, subjects, boxes, False)
    assert (perfect["psnr"] == 100).all() and np.allclose(
        perfect["identity_distance"], 0, atol=1e-5
    )
    assert (perfect["rank1"] == 1).all() and "rank5" not in perfect  # 2 subjects: no rank-5
    assert (perfect["landmark_nrmse"][perfect["landmark_detection_rate"] == 1] < 0.05).all()
    assert perfect["landmark_detection_rate"].mean() > 0.9
    assert (perfect["psnr_photo"] == 100).all()
    for s in subjects:  # the photo box holds the photo, not the grey margin
        x0, y0, x1, y1 = targets[s]["photo_box"]
        inside = targets[s]["hr"][:, y0:y1, x0:x1]
        assert (
            (inside == 128).all(0).float().mean()
            < 0.02
            < (targets[s]["hr"] == 128).all(0).float().mean()
        )


def test_record_counts_are_consistent(record):
    r = record
    assert {
        "method",
        "task",
        "n",
        "images",
        "faces",
        "rejects",
        "by_azimuth_bin",
        "by_subject",
    } | set(KEYS) <= set(r)
    json.dumps(r, allow_nan=False)
    assert r["method"] == "bicubic" and r["task"] == "illumination" and r["parameters"] == 0
    assert r["subjects"] == r["subjects_scored"] == ["yaleB01", "yaleB02"]
    assert r["images"] == 128 == r["faces"] + r["rejects"]
    assert sum(r["rejects_by_reason"].values()) == r["rejects"] == len(r["rejected"])
    assert r["n"] == r["faces"] - r["skipped_without_target"] and r["skipped_without_target"] == 0
    for s in r["subjects"]:
        assert r["by_subject"][s]["n"] == r["images_by_subject"][s] - r["rejects_by_subject"][s]
    assert list(r["images_by_azimuth_bin"].values()) == [32, 32, 28, 36]  # 16+16+14+18 each
    for b in r["azimuth_bins"]:
        n = r["by_azimuth_bin"].get(b, {"n": 0})["n"]
        assert n == r["images_by_azimuth_bin"][b] - r["rejects_by_azimuth_bin"][b]
    assert sum(v["n"] for v in r["by_azimuth_bin"].values()) == r["n"]
    assert r["gallery_size"] == 2 and r["rank5"] is None and 0 <= r["rank1"] <= 1
    assert r["rejects_by_azimuth_bin"]["85-130"] >= r["rejects_by_azimuth_bin"]["0-20"]
    assert 10 < r["psnr"] < 40 and 0 < r["ssim"] < 1 and 0 < r["identity_distance"] < 1.5
    assert 0.1 < r["photo_fraction"] < 1 and r["psnr_photo"] < r["psnr"]  # the margin is easy


def test_an_illumination_checkpoint_and_the_cli(work, record, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "ill", "illumination")
    out = tmp_path / "yale.json"
    argv = ["yale", "--folder", str(YALE), "--checkpoint", str(ckpt), "--subjects", "2",
            "--out", str(out), "--markdown", "--work", str(work), "--workers", "1",
            "--grid", str(tmp_path / "grid.png")]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| 85-130 |" in table and "method baseline" in table
    got = json.loads(out.read_text())
    assert got["method"] == "baseline" and got["parameters"] > 0
    assert got["n"] == record["n"] and got["rejected"] == record["rejected"]  # the same images
    assert got["psnr"] != record["psnr"]
    assert (tmp_path / "grid.png").is_file()


def test_a_cpgan_checkpoint_gets_the_guide(work, record, faces, tmp_path):
    from models.archs.cpgan import CPGANConfig, CPGANGenerator
    from models.train.model_file import save_model

    arch = {"width": 16, "internal_blocks": 1, "external_blocks": 1, "hourglass_width": 16}
    torch.manual_seed(0)
    net = CPGANGenerator(CPGANConfig(**arch), 16)
    ckpt = save_model(net, tmp_path / "cpgan", "cpgan", "illumination", arch, 16)
    r = yale.evaluate_yale(
        YALE, None, ckpt, params=_params(), subjects=SUBJECTS, faces_dir=faces, work_dir=work,
        workers=1, device="cpu", progress=False,
    )  # fmt: skip
    assert r["method"] == "cpgan" and r["parameters"] == sum(p.numel() for p in net.parameters())
    assert r["guide_face_id"] == yale.pick_guide(faces)[1]
    assert r["n"] == record["n"] and r["rejected"] == record["rejected"]
    assert 0 < r["ssim"] < 1 and r["psnr"] != record["psnr"]
