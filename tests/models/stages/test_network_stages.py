"""The network stages end to end on a tiny occlusion pair set: train the baseline and Pro-UIGAN,
evaluate them and bicubic, write the summary table; and their bad-input errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datagen.stages.pairs_occlusion import build_pairs_occlusion
from models.eval.protocol import KEYS, checkpoint_dir
from models.stages.eval_summary import build_eval_summary
from models.stages.evaluate import build_evaluate
from models.stages.train_baseline import build_train_baseline
from models.stages.train_prouigan import build_train_prouigan
from models.train.checkpoints import CheckpointError
from tests.helpers import small_faces

TINY = {
    "arch": {"width": 16, "blocks": 1},
    "identity_steps": 2,  # the default recipe's second phase, as the pipeline runs it
    "train": {"steps": 6, "batch": 4, "device": "cpu"},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    faces = small_faces(
        tmp_path_factory, ("001", "002", "003", "004"), 0.5, {"samples_per_shard": 64}
    )
    pairs = tmp_path_factory.mktemp("occ")
    build_pairs_occlusion(faces, pairs, {"k": 2}, {}, {"samples_per_shard": 64}, 0, workers=1,
                          progress=False)  # fmt: skip
    model = tmp_path_factory.mktemp("baseline-occlusion")
    summary = build_train_baseline("occlusion", pairs, model, TINY, 0, None, progress=False)
    return faces, pairs, model, summary


def test_train_evaluate_and_summarise(built, tmp_path):
    faces, pairs, model, summary = built
    assert summary["steps"] == 6 and (model / "model.safetensors").is_file()
    assert (model / "samples.png").is_file()
    for method, ckpt in (("bicubic", None), ("baseline", model)):
        r = build_evaluate(method, "occlusion", pairs, faces, ckpt,
                           tmp_path / f"{method}-occlusion.json", tmp_path / f"{method}.png", "cpu")  # fmt: skip
        on_disk = json.loads((tmp_path / f"{method}-occlusion.json").read_text())
        assert on_disk == json.loads(json.dumps(r))
        for k in (*KEYS, "n", "ms_per_image", "parameters", "by_mask_kind", "by_square_side",
                  "by_hole_bin"):  # fmt: skip
            assert k in r, k
        assert r["n"] == 8 and set(r["ms_per_image"]) == {"1", "64"}
        assert (tmp_path / f"{method}.png").is_file()
        # square masks have no PConv bin: they are in no hole-bin group
        assert (
            sum(g["n"] for g in r["by_hole_bin"].values())
            == r["by_mask_kind"].get("irregular", {"n": 0})["n"]
        )
    assert r["parameters"] > 0
    table = build_eval_summary(tmp_path, tmp_path / "summary.md")
    assert "## occlusion" in table and "| bicubic |" in table and "| baseline |" in table
    assert "| hole MAE |" in table.splitlines()[4]  # the occlusion table's header


PROUIGAN_TINY = {
    "arch": {"widths": [8, 8, 8, 4], "res_blocks": 1, "hourglass_width": 8},
    "estimator": {"width": 16, "stacks": 1, "heatmap_size": 16},
    "weights": {"perceptual": 0.0, "style": [0.0, 0.0, 0.0]},
    "estimator_steps": 2, "block1_steps": 2, "block2_steps": 2,
    "train": {"steps": 8, "batch": 4, "device": "cpu"},
}  # fmt: skip


def test_prouigan_trains_and_evaluates_with_its_estimator_and_blocks(built, tmp_path):
    faces, pairs, _, _ = built
    model = tmp_path / "prouigan"
    summary = build_train_prouigan(pairs, model, PROUIGAN_TINY, 0, None, progress=False)
    assert summary["steps"] == 8 and (model / "model.safetensors").is_file()
    grids = {}
    for method, ckpt in (("bicubic", None), ("prouigan", model)):
        r = build_evaluate(method, "occlusion", pairs, faces, ckpt,
                           tmp_path / f"{method}-occlusion.json", tmp_path / f"{method}.png", "cpu")  # fmt: skip
        grids[method] = np.asarray(Image.open(tmp_path / f"{method}.png"))
        assert {"hole_mae", "by_mask_kind", "by_square_side"} <= set(r)
    # the estimator's landmarks on the LR input, scored against the clean face's
    assert 0 < r["estimator_nrmse"] < 10 and "estimator_nrmse" not in json.loads(
        (tmp_path / "bicubic-occlusion.json").read_text()
    )
    # bicubic: LR | bicubic | target; Pro-UIGAN adds blocks 1 and 2 (32 and 64 px) and its face
    width = {k: (g.shape[1] - 2) // (128 + 2) for k, g in grids.items()}
    assert width == {"bicubic": 3, "prouigan": 6}
    block1 = grids["prouigan"][2:130, 2 + 2 * 130 : 2 * 130 + 130]
    assert (block1[::4, ::4] == block1[1::4, 1::4]).all()  # the 32 px face, nearest-upsampled
    assert "| prouigan |" in build_eval_summary(tmp_path, tmp_path / "summary.md")


def test_bad_inputs_are_clear_errors(built, tmp_path):
    faces, pairs, model, _ = built
    with pytest.raises(CheckpointError, match="trained for the occlusion task, not pose"):
        build_evaluate("baseline", "pose", pairs, faces, model, tmp_path / "x.json", None, "cpu")
    with pytest.raises(FileNotFoundError, match="no-such-pairs"):
        build_evaluate("bicubic", "pose", tmp_path / "no-such-pairs", faces, None,
                       tmp_path / "x.json", None, "cpu")  # fmt: skip
    with pytest.raises(ValueError, match="lacks column"):
        build_train_baseline("pose", pairs, tmp_path / "m", TINY, 0, None, progress=False)


def test_checkpoint_dirs_follow_the_training_stages():
    # dvc.yaml's train stages write these folders; the evaluate stage reads them
    assert checkpoint_dir("baseline", "pose") == Path("artifacts/models/baseline-pose")
    assert checkpoint_dir("cpgan", "illumination") == Path("artifacts/models/cpgan")
    with pytest.raises(ValueError, match="cpgan is trained for illumination, not pose"):
        checkpoint_dir("cpgan", "pose")
    with pytest.raises(ValueError, match="no checkpoint"):
        checkpoint_dir("bicubic", "pose")
