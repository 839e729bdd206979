from datagen.tools.masks import main as masks_main


def test_stats_command_prints_a_histogram_table(capsys, tmp_path):
    assert masks_main(["stats", "--n", "24"]) == 0
    out = capsys.readouterr().out
    assert "| irregular (bins uniform) | 24 |" in out and "| square 16-64 px | 24 |" in out
    assert masks_main(["stats", "--n", "4", "--folder", str(tmp_path)]) == 2
    assert "holds no image files" in capsys.readouterr().err
