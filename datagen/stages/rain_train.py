"""Stage ``rain_train``: ``data/faces`` (+ ``data/fits`` for the built-in style pool) ->
``artifacts/rain/`` (RaIN checkpoint, sample grid, style rejects) and the dvclive loss curves.

The checkpoint's bytes depend only on the params and the inputs: training is seeded and the
file is written canonically (``models.train.checkpoints``), so re-training with the same params
leaves ``pairs_illumination`` valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from datagen import rain
from datagen.core.images import tile_grid, write_png
from datagen.face3d.relight import RelightParams
from datagen.rain import pool as rain_pool
from datagen.rain import train as rt
from models.train.device import pick_device


def build_rain_train(
    faces_dir: Path,
    fits_dir: Path,
    out_dir: Path,
    rain_params: dict[str, Any],
    relight_params: dict[str, Any],
    seed: int,
    live_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train RaIN on the faces of ``faces_dir`` and a style pool (``rain.style_folders``, or
    the train faces relit from their ``fits_dir`` fits); write the checkpoint and a sample grid
    to ``out_dir``, the loss curves to ``live_dir`` (dvclive; None: not logged). Returns a
    summary."""
    p = rain.RainParams.from_params(rain_params)
    relight_p = RelightParams.from_params(relight_params)
    device = pick_device(p.device)
    out = Path(out_dir)
    size = p.model.size
    if p.style_folders:
        pool = rain_pool.folder_pool(p.style_folders, size)
        pool_kind = "folders"
    else:
        pool = rain_pool.physical_pool(
            Path(faces_dir), Path(fits_dir), size, p.style_per_face, relight_p, seed
        )
        pool_kind = "physical"
    content = rain_pool.content_faces(Path(faces_dir), size)
    if p.weights.paired and pool.content_index is None:
        print(
            "rain_train: rain.weights.paired is not used: a folder pool holds no relit versions of the train faces"
        )
    print(f"rain_train: {len(content)} UI faces, {len(pool.images)} NI style images ({pool_kind})")

    if live_dir is None:
        model, summary = rt.train(content, pool, p, seed, device, progress=progress)
    else:
        from dvclive import Live

        with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None) as live:
            model, summary = rt.train(content, pool, p, seed, device, live=live, progress=progress)
    # run knobs (device, log_every) stay out: they do not change the weights' meaning
    extra: dict[str, Any] = {"params": p.outputs(), "seed": seed, "pool": pool_kind}
    if pool_kind == "physical":
        extra["relight"] = relight_p.outputs()
    rain.save(model, out, extra=extra)
    rejects = out / "style_rejects.json"
    if pool.rejects:
        rejects.write_text(json.dumps(pool.rejects, indent=1))
    else:
        rejects.unlink(missing_ok=True)

    # sample grid: held-out faces when there are any
    try:
        faces = rain_pool.content_faces(Path(faces_dir), size, split="test")[:4]
    except ValueError:
        faces = content[:4]
    write_png(out / "samples.png", tile_grid(rt.sample_rows(model, faces, 6, seed)))
    summary["pool"] = pool_kind
    summary["stats_reconstruction_mse"] = round(
        rt.stats_reconstruction_error(model, pool.images[:256]), 4
    )
    summary["torch_threads"] = torch.get_num_threads()
    return summary
