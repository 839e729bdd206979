"""Prior editing (Pro-UIGAN s IV-F): landmarks from heatmaps, the edits, the change measured
where the moved landmarks are, and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from datagen.core.images import write_png
from datagen.face import align
from models.eval import prior_edit
from models.eval.__main__ import main
from models.losses.heatmap import gaussian_heatmaps, soft_argmax


def _landmarks() -> np.ndarray:
    return align.template_pixels(128)


def test_soft_argmax_recovers_the_landmarks_drawn():
    marks = torch.from_numpy(_landmarks()).float()[None]
    maps = gaussian_heatmaps(marks, 128, 32, 2.0)
    back = soft_argmax(maps, 128)
    assert back.shape == (1, 68, 2) and (back - marks).abs().max() < 0.5


def test_edits_move_only_their_group():
    marks = _landmarks()
    moves = prior_edit.parse_moves(["mouth:1.5,1"], ["left_eye:0,-4"])
    moved = prior_edit.move_landmarks(marks, moves)
    mouth, eye = list(prior_edit.GROUPS["mouth"]), list(prior_edit.GROUPS["left_eye"])
    others = [i for i in range(68) if i not in mouth + eye]
    assert np.array_equal(moved[others], marks[others])
    width = np.ptp(moved[mouth, 0]) / np.ptp(marks[mouth, 0])
    assert width == pytest.approx(1.5) and np.allclose(moved[mouth, 1], marks[mouth, 1])
    assert np.allclose(moved[eye] - marks[eye], [0, -4])
    with pytest.raises(ValueError, match="unknown landmark group"):
        prior_edit.parse_moves(["lips:1,1"], [])
    with pytest.raises(ValueError, match="two numbers"):
        prior_edit.parse_moves(["mouth:1.2"], [])
    with pytest.raises(ValueError, match="> 0"):
        prior_edit.parse_moves(["mouth:0,1"], [])
    with pytest.raises(ValueError, match="no edit"):
        prior_edit.parse_moves([], [])


class PriorPainter(nn.Module):
    """A stand-in for a model that follows its prior exactly: its face is the heatmaps' maximum,
    drawn at 128 px, and its estimator always finds the template's landmarks."""

    def __init__(self):
        super().__init__()
        marks = torch.from_numpy(_landmarks()).float()[None]
        self.maps = gaussian_heatmaps(marks, 128, 32, 2.0)

    def frozen_heatmaps(self, lr: torch.Tensor) -> torch.Tensor:
        return self.maps.expand(len(lr), -1, -1, -1)

    def forward(self, lr, heatmaps, upto=None, part="face"):
        up = nn.functional.interpolate(heatmaps, size=(128, 128), mode="bilinear")
        face = up.amax(1, keepdim=True).expand(-1, 3, -1, -1) * 2 - 1
        return {"output": face}


def test_the_output_changes_where_the_moved_landmarks_are():
    moves = prior_edit.parse_moves(["mouth:1.4,1"], [])
    r = prior_edit.edit_face(PriorPainter(), torch.zeros(3, 16, 16), moves)
    x0, y0, x1, y1 = r["box"]
    mouth = r["landmarks_after"][list(prior_edit.GROUPS["mouth"])]
    assert x0 <= mouth[:, 0].min() and mouth[:, 0].max() < x1 and y0 <= mouth[:, 1].min()
    assert r["change_inside"] > 0.02 and r["change_outside"] < r["change_inside"] / 20
    assert r["before"].shape == r["after"].shape == (128, 128, 3)
    with pytest.raises(ValueError, match="needs a Pro-UIGAN"):
        prior_edit.edit_face(nn.Identity(), torch.zeros(3, 16, 16), moves)


def test_the_command_on_a_tiny_model(tmp_path, capsys):
    from models.archs.prouigan import LandmarkEstimatorConfig, ProUIGANConfig
    from models.train.model_file import save_model
    from models.train.prouigan import ProUIGANParams, arch_of, prouigan_recipe

    p = ProUIGANParams(
        arch=ProUIGANConfig(widths=(8, 8, 8, 4), res_blocks=1, hourglass_width=8),
        estimator=LandmarkEstimatorConfig(width=16, stacks=1, heatmap_size=16),
    )
    g = prouigan_recipe(p).modules["g"]
    ckpt = save_model(g, tmp_path / "m", "prouigan", "occlusion", arch_of(p), 16)
    lr = tmp_path / "lr.png"
    write_png(lr, np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype(np.uint8))
    out = tmp_path / "edit.png"
    argv = ["edit", "--checkpoint", str(ckpt), "--lr", str(lr), "--scale", "mouth:1.3,1",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["groups"] == ["mouth"] and record["points"] == 20 and out.is_file()
    assert main([*argv[:-4], "--scale", "lips:1,1", "--out", str(out)]) == 2
    assert "unknown landmark group" in capsys.readouterr().err
    from tests.models.eval.test_yale import _checkpoint

    other = _checkpoint(tmp_path / "base", "occlusion")
    assert main(["edit", "--checkpoint", str(other), "--lr", str(lr), "--scale", "mouth:1.3,1",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "prouigan" in capsys.readouterr().err
