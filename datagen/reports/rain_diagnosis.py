"""Where does a RaIN checkpoint lose the light of its style pool? The VAE or the decoder.

``python -m datagen.reports.rain_diagnosis [--checkpoint artifacts/rain] [--markdown]``

The built-in pool (the train faces relit by ``datagen.face3d.relight`` with the ``relight`` group
of ``--params``, ``rain.style_per_face`` each, the pool ``rain_train`` builds) is encoded to its
standardised relu4_1 statistics. Then, on the first ``--faces`` pool images (every
``style_per_face``-th, so each of a different face):

- **VAE**: the active latent dimensions (posterior means varying by more than 0.01 over the
  pool), and how far decoded statistics spread (their per-statistic deviation, averaged; the
  pool's own is 1 after standardisation) for the posterior means, for draws from N(0, I) and for
  draws from the Gaussian of the pool's posteriors (``RaIN.fit_prior``). A ridge regression
  (lambda 10) from the pool's statistics to each pool image's left-right luminance asymmetry
  (``rain_quality.asymmetry``) says how much light direction each set of statistics carries: the
  deviation of its predictions.
- **decoder**: each pool image's UI face relit with the posterior mean of that image's
  statistics (what the decoder makes of the right light) and with a draw from the checkpoint's
  own sampling prior: the deviation of their left-right asymmetry against the pool images', and
  the correlation of the posterior-mean relights' asymmetry with the pool images'.

A decoder that lays the light over the face reproduces the pool's asymmetry from the posterior
means (correlation near 1, the same deviation); a VAE whose samples carry the light gives
prior-draw predictions that spread like the pool's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datagen import rain
from datagen.core.params import group, load_params
from datagen.core.tables import format_table
from datagen.face3d.relight import RelightParams
from datagen.rain import pool as rain_pool
from datagen.reports.rain_quality import asymmetry, luminance


def ridge_direction(x: np.ndarray, y: np.ndarray, lam: float = 10.0) -> np.ndarray:
    """Weights of a ridge regression of ``y`` on the rows of ``x``, both centred (so the
    deviation of ``x @ w`` over any set of rows is what the rule reads from them)."""
    xc = x - x.mean(0)
    return np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ (y - y.mean()))


def diagnose(model: rain.RaIN, pool: rain_pool.StylePool, content: np.ndarray, n: int) -> dict:
    """The figures of the module docstring for ``n`` pool images."""
    with torch.no_grad():
        s = torch.cat(
            [
                model.standardise(model.content(rain.to_tensor(pool.images[i : i + 32])))
                for i in range(0, len(pool.images), 32)
            ]
        )
        mu, logvar = model.vae.encode(s)
        lr_pool = asymmetry(luminance(pool.images))[0]
        w = ridge_direction(s.numpy().astype(np.float64), lr_pool)
        z = rain.latents(0, 1000, model.config.latent)
        normal = model.vae.decode(z)
        mean, chol = rain.posterior_gaussian(mu, logvar)
        aggregate = model.vae.decode(mean + z @ chol.T)
        per = len(pool.images) // max(len(content), 1) or 1
        idx = np.arange(0, len(pool.images), per)[:n]
        own = rain.latents(1, len(idx), model.config.latent)
        # mu is in the VAE's latent space; the checkpoint's sampling maps N(0, I) draws, so the
        # posterior means go through the inverse of that map
        mean_z = torch.linalg.solve_triangular(
            model.prior_chol, (mu[idx] - model.prior_mean).T, upper=False
        ).T
        post, prior = [], []
        for j, i in enumerate(idx):
            face = content[pool.content_index[i]]
            post.append(rain.relight_face(model, face, mean_z[j : j + 1])[0])
            prior.append(rain.relight_face(model, face, own[j : j + 1])[0])
        decoded_means = model.vae.decode(mu)
    lr_post = asymmetry(luminance(np.stack(post)))[0]
    lr_prior = asymmetry(luminance(np.stack(prior)))[0]

    def spread(t: torch.Tensor) -> float:
        return float(t.std(0).mean())

    def direction(t: torch.Tensor) -> float:
        return float((t.numpy().astype(np.float64) @ w).std())

    return {
        "pool_images": len(pool.images),
        "latent": model.config.latent,
        "active_dims": int((mu.var(0) > 0.01).sum()),
        "stats_spread": {
            "pool": spread(s),
            "posterior_means": spread(decoded_means),
            "normal_draws": spread(normal),
            "posterior_gaussian_draws": spread(aggregate),
        },
        "direction_spread": {
            "pool": direction(s),
            "posterior_means": direction(decoded_means),
            "normal_draws": direction(normal),
            "posterior_gaussian_draws": direction(aggregate),
        },
        "relit_faces": len(idx),
        "lr_sd": {
            "pool_images": float(lr_pool[idx].std()),
            "posterior_mean_relights": float(lr_post.std()),
            "prior_relights": float(lr_prior.std()),
        },
        "lr_correlation": float(np.corrcoef(lr_post, lr_pool[idx])[0, 1]),
    }


def table(r: dict[str, Any], markdown: bool) -> str:
    rows = [
        ["active latent dimensions", f"{r['active_dims']} of {r['latent']}"],
        *(
            [f"statistics spread: {k.replace('_', ' ')}", f"{v:.2f}"]
            for k, v in r["stats_spread"].items()
        ),
        *(
            [f"light direction read from statistics (sd): {k.replace('_', ' ')}", f"{v:.3f}"]
            for k, v in r["direction_spread"].items()
        ),
        *([f"L-R sd: {k.replace('_', ' ')}", f"{v:.3f}"] for k, v in r["lr_sd"].items()),
        ["L-R correlation, posterior-mean relights vs pool", f"{r['lr_correlation']:.3f}"],
    ]
    return format_table(["figure", "value"], rows, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.reports.rain_diagnosis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--checkpoint", default="artifacts/rain")
    ap.add_argument("--faces", default="data/faces")
    ap.add_argument("--fits", default="data/fits")
    ap.add_argument("--params", default="params.yaml", help="its relight and rain groups")
    ap.add_argument("--n", type=int, default=60, help="pool images relit (default 60)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        model = rain.load(rain.checkpoint_file(args.checkpoint))
        per_face = rain.RainParams.from_params(group(params, "rain")).style_per_face
        pool = rain_pool.physical_pool(
            Path(args.faces),
            Path(args.fits),
            model.config.size,
            per_face,
            RelightParams.from_params(group(params, "relight")),
            int(params.get("seed", 0)),
        )
        content = rain_pool.content_faces(Path(args.faces), model.config.size)
    except (rain.CheckpointError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"rain_diagnosis: {e}", file=sys.stderr)
        return 2
    print(table(diagnose(model, pool, content, args.n), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
