"""DVC stage ``rain_train``: ``data/faces`` (+ ``data/fits`` for the built-in style pool) ->
``artifacts/rain/`` (RaIN checkpoint, sample grid) and the dvclive loss curves."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from datagen import rain
from datagen import rain_train as rt
from datagen.images import tile_grid, write_png
from datagen.params import group, load_params
from datagen.relight import RelightParams
from pipelines.metrics import write_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--fits", default="data/fits")
    ap.add_argument("--out", default="artifacts/rain")
    ap.add_argument("--metrics", default="metrics/rain_train.json")
    ap.add_argument("--live", default="metrics/rain_train_live", help="dvclive folder")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    p = rain.RainParams.from_params(group(params, "rain"))
    relight_p = RelightParams.from_params(params.get("relight") or {})
    seed = int(params.get("seed", 0))
    device = rain.pick_device(p.device)
    out = Path(args.out)
    t0 = time.perf_counter()

    size = p.model.size
    if p.style_folders:
        pool = rt.folder_pool(p.style_folders, size)
        pool_kind = "folders"
    else:
        pool = rt.physical_pool(
            Path(args.faces), Path(args.fits), size, p.style_per_face, relight_p, seed
        )
        pool_kind = "physical"
    content = rt.content_faces(Path(args.faces), size)
    if p.weights.paired and pool.content_index is None:
        print(
            "rain_train: rain.weights.paired is not used: a folder pool holds no relit versions of the train faces"
        )
    print(f"rain_train: {len(content)} UI faces, {len(pool.images)} NI style images ({pool_kind})")

    from dvclive import Live

    with Live(dir=args.live, save_dvc_exp=False, dvcyaml=None) as live:
        model, summary = rt.train(content, pool, p, seed, device, live=live)
    rain.save(model, out, extra={"params": asdict(p), "seed": seed, "pool": pool_kind})
    if pool.rejects:
        (out / "style_rejects.json").write_text(json.dumps(pool.rejects, indent=1))

    # sample grid: held-out faces when there are any
    try:
        faces = rt.content_faces(Path(args.faces), size, split="test")[:4]
    except ValueError:
        faces = content[:4]
    write_png(out / "samples.png", tile_grid(rt.sample_rows(model, faces, 6, seed)))
    summary["pool"] = pool_kind
    summary["stats_reconstruction_mse"] = round(
        rt.stats_reconstruction_error(model, pool.images[:256]), 4
    )
    summary["torch_threads"] = torch.get_num_threads()
    write_metrics(args.metrics, summary, t0)
    print(
        f"rain_train: {p.steps} steps in {summary['train_seconds']} s "
        f"({summary['steps_per_second']} steps/s on {device}); final losses "
        f"{summary['final_losses']}; checkpoint {out / rain.CHECKPOINT}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
