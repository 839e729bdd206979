import math

import cv2
import numpy as np
import pytest
from PIL import Image

from datagen.face.masks import StrokeShape, irregular_mask
from datagen.tools.masks import by_bin, mean_shape, ratio_bin, shape_stats
from datagen.tools.masks import main as masks_main


def disk(radius: int, size: int = 128) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.circle(m, (size // 2, size // 2), radius, 255, -1)
    return m


def test_one_disk_reads_one_hole_of_the_analytic_width():
    r = 20
    s = shape_stats(disk(r))
    assert s.holes == 1 and s.largest == 1
    # mean distance to the edge over a disk is R/3; pixel centres sit half a pixel further in
    assert s.width == pytest.approx(2 * r / 3 + 1, rel=0.05)
    # outline / sqrt(area) of a disk is 2 sqrt(pi); the pixel-centre chain runs a little short
    assert s.perimeter == pytest.approx(2 * math.sqrt(math.pi), rel=0.06)


def test_two_straight_strokes_read_two_holes_of_their_width():
    w, length = 9, 80
    m = np.zeros((128, 128), np.uint8)
    m[20 : 20 + w, 20 : 20 + length] = 255
    m[60 : 60 + w, 30 : 30 + length] = 255
    s = shape_stats(m)
    assert s.holes == 2 and s.largest == 0.5
    # a band w px wide: distances 1, 2, ..., 2, 1 across it, mean about w / 4 + 1 / 2
    assert s.width == pytest.approx(w / 2 + 1, rel=0.05)
    # each outline runs through the boundary pixels' centres: 2 x ((length - 1) + (w - 1))
    assert s.perimeter == pytest.approx(4 * ((length - 1) + (w - 1)) / math.sqrt(2 * w * length))


def test_holes_are_8_connected_and_an_empty_mask_reads_zero():
    m = np.zeros((16, 16), np.uint8)
    m[3, 3] = m[4, 4] = 255  # touching corners: one hole
    m[10, 10] = 255
    s = shape_stats(m)
    assert s.holes == 2 and s.largest == pytest.approx(2 / 3)
    assert shape_stats(np.zeros((16, 16), np.uint8)) == (0, 0, 0, 0)
    assert all(math.isnan(v) for v in mean_shape([]))


def test_masks_are_binned_by_their_own_hole_ratio():
    assert ratio_bin(0.0) == 0 and ratio_bin(0.0999) == 0 and ratio_bin(0.1) == 1
    assert ratio_bin(0.5999) == 5 and ratio_bin(0.6) is None
    groups = by_bin([disk(20), disk(30), disk(80)])  # 7.7%, 17%, over 60%
    assert [len(g) for g in groups] == [1, 1, 0, 0, 0, 0]


def test_strokes_are_many_and_thin_at_bin_0_and_few_and_wide_at_bin_5():
    def at(b, style):
        return mean_shape(
            [irregular_mask(np.random.default_rng([s, b]), 128, b, style)[0] for s in range(30)]
        )

    low, high = at(0, "strokes"), at(5, "strokes")
    assert low.holes > 2 * high.holes and low.width < high.width / 2
    assert low.largest < high.largest
    # the point of the style: at bin 0 the blobs are a couple of fat holes, the strokes are not
    blobs = at(0, "blobs")
    assert low.holes > 2 * blobs.holes and low.width < 0.7 * blobs.width


def test_stats_command_prints_the_histogram_and_the_shape_tables(capsys, tmp_path):
    assert masks_main(["stats", "--n", "24"]) == 0
    out = capsys.readouterr().out
    assert "| irregular strokes (bins uniform) | 24 |" in out and "| square 16-64 px | 24 |" in out
    assert "| irregular blobs (bins uniform) | 24 |" in out
    assert "Shape statistics per bin, irregular strokes (128 px)" in out
    assert "| 0: 0-10% | 4 |" in out and "| all (0-60%) | 24 |" in out
    assert masks_main(["stats", "--n", "4", "--folder", str(tmp_path)]) == 2
    assert "holds no image files" in capsys.readouterr().err


def test_stats_command_compares_with_a_folder_per_bin(capsys, tmp_path):
    for i, r in enumerate((40, 44, 60, 80)):  # at 128 px: 7.7%, 9.3%, 17%, 31% (bins 0, 0, 1, 3)
        Image.fromarray(disk(r, 256)).save(tmp_path / f"{i}.png")
    assert masks_main(["stats", "--n", "12", "--folder", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "irregular strokes against the folder's 4 files, whole (128 px)" in out
    head = next(line for line in out.splitlines() if line.startswith("| bin | n | n folder |"))
    assert [c.strip() for c in head.split("|")].count("ratio") == 4
    row = next(line for line in out.splitlines() if line.startswith("| 0: 0-10% |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["2", "2"]  # ours, folder
    holes, folder_holes, ratio = (float(c) for c in cells[3:6])
    assert folder_holes == 1 and ratio == pytest.approx(holes / folder_holes, abs=0.01)
    assert "strokes: worst ratio" in out and "blobs: worst ratio" in out


def test_fit_command_prints_a_shapes_table_to_paste(capsys, tmp_path):
    for i, r in enumerate((20, 22)):  # 7.7% and 9.3%: bin 0
        Image.fromarray(disk(r)).save(tmp_path / f"{i}.png")
    args = ["fit", "--folder", str(tmp_path), "--bins", "0", "--n", "3", "--sweeps", "1"]
    assert masks_main(args) == 0
    out = capsys.readouterr().out
    src = out[out.index("STROKE_SHAPES") :]
    namespace = {"StrokeShape": StrokeShape}
    exec(src, namespace)  # noqa: S102 - the printed table is Python meant to be pasted
    shapes = namespace["STROKE_SHAPES"]
    assert len(shapes) == 6 and all(isinstance(s, StrokeShape) for s in shapes)
    assert "| 0: 0-10% | 3 | 2 |" in out


def test_stats_command_says_so_when_no_bin_can_be_compared(capsys, tmp_path):
    Image.fromarray(disk(80)).save(tmp_path / "big.png")  # over 60%: in no bin
    assert masks_main(["stats", "--n", "6", "--folder", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "strokes: no bin holds masks of both ours and the folder" in out


def test_the_goal_verdict_checks_every_ratio_of_every_bin():
    from datagen.tools.masks import BinRow, Shape, within_goal

    folder = Shape(10.0, 4.0, 13.0, 0.6)

    def rows(*ours: Shape, n_folder: int = 50) -> list[BinRow]:
        return [BinRow(str(b), 100, o, n_folder, folder) for b, o in enumerate(ours)]

    good = Shape(11.0, 3.7, 13.5, 0.62)
    assert within_goal(rows(*[good] * 6))
    # 0.82 is the ratio furthest from 1 in log, but 1.21 is the one outside 20%
    assert not within_goal(rows(*[good] * 5, Shape(8.2, 4.84, 13.0, 0.6)))
    assert not within_goal(rows(*[good] * 5, Shape(0.0, 4.0, 13.0, 0.6)))  # no holes at all
    assert not within_goal(rows(*[good] * 6, n_folder=0))  # nothing to compare against
