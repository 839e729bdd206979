import json

import pytest

from datagen.export import cli, run
from datagen.export.encode import chunk_pngs
from datagen.export.selection import ExportError, select


def snapshot(out):
    """Every file under ``out`` (but the manifest): path -> (bytes, mtime_ns)."""
    return {
        p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "export.json"
    }


@pytest.mark.parametrize("fmt", ["folders", "hf"])
def test_interrupted_export_resumes_without_rewriting_finished_chunks(
    pairs, tmp_path, monkeypatch, fmt
):
    encoded = []

    def interrupted(root, chunk, images, level):
        encoded.append(chunk.name)
        for k, row in enumerate(chunk_pngs(root, chunk, images, level)):
            if len(encoded) == 3 and k == 1:  # killed in the middle of the third chunk
                raise KeyboardInterrupt
            yield row

    out = tmp_path / "out"
    monkeypatch.setattr(run, "chunk_pngs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.export(pairs, out, fmt, progress=False)
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["done"] == encoded[:2] and not manifest["complete"]
    (out / ".stale.png.tmp-99999").write_bytes(b"x")  # what a killed writer leaves
    before = snapshot(out)

    encoded.clear()
    monkeypatch.setattr(
        run, "chunk_pngs", lambda *a: (encoded.append(a[1].name), chunk_pngs(*a))[1]
    )
    report = run.export(pairs, out, fmt, progress=False)
    assert len(encoded) == 6 and not set(encoded) & set(manifest["done"])
    assert report.written + report.skipped == 30 and report.skipped > 0
    after = snapshot(out)
    assert ".stale.png.tmp-99999" not in after
    finished = {k: v for k, v in before.items() if k != ".stale.png.tmp-99999"}
    if fmt == "folders":  # the finished chunks' files are untouched: same bytes and mtime
        sel = select(pairs)
        kept = [
            f"{c.split}/{col}/{name}.png"
            for c in sel.chunks
            if c.name in manifest["done"]
            for name in sel.index.column("pair_id").take(c.rows).to_pylist()
            for col in ("lr", "hr", "mask")
        ]
    else:
        kept = ["test-00000-of-00004.parquet", "test-00001-of-00004.parquet"]
    assert len(kept) == (12 if fmt == "folders" else 2)
    assert all(after[k] == finished[k] for k in kept)

    clean = tmp_path / "clean"
    run.export(pairs, clean, fmt, progress=False)
    assert {k: v[0] for k, v in snapshot(clean).items()} == {k: v[0] for k, v in after.items()}
    assert run.export(pairs, out, fmt, progress=False).written == 0  # complete: nothing to do


def test_a_folder_of_another_export_or_of_other_files_is_refused(pairs, tmp_path):
    out = tmp_path / "out"
    run.export(pairs, out, "folders", split="test", progress=False)
    with pytest.raises(
        ExportError, match=r"holds another export \(format folders, splits \['test'\]"
    ):
        run.export(pairs, out, "folders", split="train", progress=False)
    with pytest.raises(ExportError, match="holds another export"):
        run.export(pairs, out, "hf", split="test", progress=False)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(
        ExportError, match=r"mine holds files that are not a facepairs export \(notes.txt\)"
    ):
        run.export(pairs, other, "folders", overwrite=True, progress=False)
    assert (other / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_only_the_old_exports_files(pairs, tmp_path):
    out = tmp_path / "out"
    run.export(pairs, out, "folders", split="test", progress=False)
    report = run.export(pairs, out, "hf", split="train", overwrite=True, progress=False)
    assert report.written == 22
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".parquet") == ["export.json"]
    assert json.loads((out / "export.json").read_text())["identity"]["format"] == "hf"


def test_cli_exports_and_reports_bad_input_in_one_line(pairs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [str(pairs), "--format", "folders", "--out", str(out), "--no-progress"]
    assert cli.main([*argv, "--columns", "lr,hr", "--filter", "mask_kind = 'square'"]) == 0
    assert "exported 10 rows" in capsys.readouterr().out
    assert cli.main([*argv, "--columns", "lr,hr", "--filter", "mask_kind = 'square'"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert cli.main([*argv, "--columns", "lr,guide"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown column 'guide'") and err.count("\n") == 1
    assert cli.main([str(tmp_path), "--format", "hf", "--out", str(tmp_path / "x")]) == 2
    assert "not a facepairs shard dataset" in capsys.readouterr().err


def test_a_run_killed_before_its_first_manifest_can_start_again(pairs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".export.json.tmp-4242").write_text("{")  # the first save was interrupted
    assert run.export(pairs, out, "hf", split="test", progress=False).written == 8
    assert not list(out.glob("*.tmp-*"))
