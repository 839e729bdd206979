"""Training RaIN (stage ``rain_train``): the two-phase loop (the VAE on the style statistics,
then the decoder on content, style, statistics-reconstruction and KL losses; Adam), a grid of
samples and the VAE's reconstruction error. The style pools are ``datagen.rain.pool``.

The VGG encoder is fixed, so the content features of the UI faces and the statistics of the
style images are computed once, before the loop; each step then costs one decoder pass and one
encoder pass over the decoded images (forward and backward).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from datagen import rain
from datagen.core.seeding import sample_rng
from datagen.rain.pool import StylePool
from models.archs.adain import channel_stats
from models.train.live import LossLogger
from models.train.optim import optimiser_step


@torch.no_grad()
def encode_all(
    model: rain.RaIN, images: np.ndarray, device: torch.device, batch: int = 16
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """relu4_1 of every image (200 faces at 128 px are ~100 MB) and the per-layer channel
    statistics (relu1_1 .. relu4_1) that the style loss compares, in batches."""
    feat4, stats = [], []
    for i in range(0, len(images), batch):
        x = rain.to_tensor(images[i : i + batch]).to(device)
        feats = model.encoder(model.prepare(x))
        feat4.append(feats[-1].cpu())
        stats.append([tuple(t.cpu() for t in channel_stats(f)) for f in feats])
    layers = [
        (torch.cat([b[k][0] for b in stats]), torch.cat([b[k][1] for b in stats]))
        for k in range(len(stats[0]))
    ]
    return torch.cat(feat4), layers


def train(
    content: np.ndarray,
    pool: StylePool,
    p: rain.RainParams,
    seed: int,
    device: torch.device,
    live: Any = None,
    progress: bool = True,
) -> tuple[rain.RaIN, dict[str, Any]]:
    """Train the VAE and the decoder; returns the model (eval mode) and a summary."""
    torch.manual_seed(seed)  # the initial weights
    model = rain.RaIN(p.model).to(device)
    t0 = time.perf_counter()
    c_feat, c_layers = encode_all(model, content, device)
    _, s_layers = encode_all(model, pool.images, device)
    s_raw = rain.raw_stats(*s_layers[-1])
    # The Caffe VGG's activations run to the hundreds; dividing each layer by its mean
    # activation on the UI faces brings every loss term to order one, so that the weights in
    # params mean what they say.
    scales = tuple(float(m.mean()) for m, _ in c_layers)
    model.feature_scale.fill_(scales[-1])
    model.stats_mean.copy_(s_raw.mean(0))
    model.stats_std.copy_(s_raw.std(0).clamp_min(1e-3))
    s_std = ((s_raw.to(device) - model.stats_mean) / model.stats_std).cpu()
    encode_seconds = time.perf_counter() - t0

    g = torch.Generator().manual_seed(int(sample_rng(seed, "rain_train", "loop").integers(2**62)))
    model.train()
    t1 = time.perf_counter()
    vae_history = fit_vae(model, s_std, p, g, device, live, progress)
    vae_seconds = time.perf_counter() - t1
    model.vae.requires_grad_(False)
    if p.prior == "posterior":
        with torch.no_grad():
            model.fit_prior(s_std.to(device))
    t1 = time.perf_counter()
    layout_history = fit_layout(model, content, pool, s_std, p, g, device, live, progress)
    layout_seconds = time.perf_counter() - t1
    t1 = time.perf_counter()
    history = fit_decoder(
        model, c_feat, content, pool, s_std, s_layers, scales, p, g, device, live, progress
    )
    train_seconds = time.perf_counter() - t1
    model.eval()
    summary = {
        "content_faces": len(content),
        "style_images": len(pool.images),
        "style_rejects": len(pool.rejects),
        "paired_term": pool.pairs(p.weights) is not None,
        "steps": p.steps,
        "batch": p.batch,
        "device": str(device),
        "encode_seconds": round(encode_seconds, 2),
        "vae_seconds": round(vae_seconds, 2),
        "layout_seconds": round(layout_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "steps_per_second": round(p.steps / max(train_seconds, 1e-9), 3),
        "vae_losses": {k: round(v, 5) for k, v in vae_history[-1].items() if k != "step"},
        "layout_losses": (
            {k: round(v, 5) for k, v in layout_history[-1].items() if k != "step"}
            if layout_history
            else None
        ),
        "final_losses": {k: round(v, 5) for k, v in history[-1].items() if k != "step"},
        "first_losses": {k: round(v, 5) for k, v in history[0].items() if k != "step"},
    }
    return model, summary


def fit_vae(
    model: rain.RaIN,
    s_std: torch.Tensor,
    p: rain.RainParams,
    g: torch.Generator,
    device: torch.device,
    live: Any,
    progress: bool,
) -> list[dict[str, float]]:
    """Phase 1: the VAE alone on the standardised statistics of the style pool (statistics
    reconstruction + KL). It is a small MLP, so it takes thousands of steps in seconds."""
    opt = torch.optim.Adam(model.vae.parameters(), lr=p.vae_lr)
    bar = tqdm(range(p.vae_steps), desc="rain_train vae", disable=not progress)
    log = LossLogger("vae", max(p.log_every, p.vae_steps // 100), live, bar)
    for step in bar:
        si = torch.randint(len(s_std), (p.vae_batch,), generator=g)
        noise = torch.randn(p.vae_batch, p.model.latent, generator=g).to(device)
        terms = rain.vae_losses(model, s_std[si].to(device), noise)
        log.add(step, optimiser_step(opt, terms, asdict(p.weights)), step + 1 == p.vae_steps)
    return log.history


def fit_layout(
    model: rain.RaIN,
    content: np.ndarray,
    pool: StylePool,
    s_std: torch.Tensor,
    p: rain.RainParams,
    g: torch.Generator,
    device: torch.device,
    live: Any,
    progress: bool,
) -> list[dict[str, float]]:
    """Phase 1b (``rain.layout_steps``; shading output with a layout head and a pool of relit
    train faces only): the layout head alone learns, from the statistics the fixed VAE
    reconstructs (with posterior noise, as sampling draws them), the coarse log-gain that each
    pool image's light laid over its UI face (``log_gain_grid``). Why: the decoder's own terms
    reach the layout head through the convolutional decoder, and in a CPU run's few hundred
    steps it learnt to lay half of the light's left-right asymmetry over a face (README,
    RaIN quality). A regression onto known targets takes seconds. The decoder phase then
    trains it further with everything else."""
    pairs = pool.content_index
    if not p.layout_steps or model.decoder.layout is None or pairs is None:
        return []
    grid = model.config.layout_grid
    targets = []
    for i in range(0, len(pool.images), 64):
        idx = np.arange(i, min(i + 64, len(pool.images)))
        ui = rain.to_tensor(content[pairs[idx]])
        targets.append(rain.log_gain_grid(ui, rain.to_tensor(pool.images[idx]), grid))
    target = torch.cat(targets).flatten(1)
    head = model.decoder.layout
    opt = torch.optim.Adam(head.parameters(), lr=p.vae_lr)
    bar = tqdm(range(p.layout_steps), desc="rain_train layout", disable=not progress)
    log = LossLogger("layout", max(p.log_every, p.layout_steps // 100), live, bar)
    for step in bar:
        si = torch.randint(len(s_std), (p.vae_batch,), generator=g)
        noise = torch.randn(p.vae_batch, p.model.latent, generator=g).to(device)
        with torch.no_grad():
            s_hat = model.vae(s_std[si].to(device), noise)[0]
        terms = {"layout": F.mse_loss(head(s_hat), target[si].to(device))}
        log.add(step, optimiser_step(opt, terms, {"layout": 1.0}), step + 1 == p.layout_steps)
    return log.history


def fit_decoder(
    model: rain.RaIN,
    c_feat: torch.Tensor,
    content: np.ndarray,
    pool: StylePool,
    s_std: torch.Tensor,
    s_layers: list[tuple[torch.Tensor, torch.Tensor]],
    scales: tuple[float, ...],
    p: rain.RainParams,
    g: torch.Generator,
    device: torch.device,
    live: Any,
    progress: bool,
) -> list[dict[str, float]]:
    """Phase 2: the decoder, on batches of (UI face, NI style image) pairs. The AdaIN target
    takes the statistics the (now fixed) VAE reconstructs from the style image with posterior
    noise, i.e. the distribution sampling will draw from; the style loss compares with the
    style image itself. With the paired term and a pool that pairs its images with the content
    faces (``content_index``), the first half of each batch takes the UI face that each style
    image is a relit version of, the statistics of the posterior mean, and the paired term
    compares the decoded face with that image. Images become tensors a batch at a time."""
    opt = torch.optim.Adam(model.decoder.parameters(), lr=p.lr)
    pairs = pool.pairs(p.weights)
    n_paired = max(1, p.batch // 2) if pairs is not None else 0
    bar = tqdm(range(p.steps), desc="rain_train decoder", disable=not progress)
    log = LossLogger("decoder", p.log_every, live, bar)
    for step in bar:
        ci = torch.randint(len(c_feat), (p.batch,), generator=g)
        si = torch.randint(len(s_std), (p.batch,), generator=g)
        if pairs is not None:
            ci[:n_paired] = torch.from_numpy(pairs[si[:n_paired].numpy()])
        noise = torch.randn(p.batch, p.model.latent, generator=g)
        # paired rows decode the posterior mean: their target is that very relit face
        noise[:n_paired] = 0
        with torch.no_grad():
            s_hat = model.vae(s_std[si].to(device), noise.to(device))[0]
        terms = rain.decoder_losses(
            model,
            c_feat[ci].to(device),
            rain.to_tensor(content[ci.numpy()]).to(device),
            s_hat,
            [(m[si].to(device), s[si].to(device)) for m, s in s_layers],
            p.weights,
            scales,
            rain.to_tensor(pool.images[si[:n_paired].numpy()]).to(device) if n_paired else None,
        )
        log.add(step, optimiser_step(opt, terms, asdict(p.weights)), step + 1 == p.steps)
    return log.history


def sample_rows(model: rain.RaIN, faces: np.ndarray, n: int, seed: int) -> list[list[np.ndarray]]:
    """Per face: the UI face, then ``n`` relit versions (latents from ``seed``)."""
    z = rain.latents(seed, n, model.config.latent)
    return [[f, *rain.relight_face(model, f, z)] for f in faces]


def stats_reconstruction_error(model: rain.RaIN, images: np.ndarray) -> float:
    """Mean squared error of the VAE's reconstruction (posterior mean) of the standardised
    relu4_1 statistics of ``images``; 1.0 is what predicting the pool mean scores on the pool."""
    device = next(model.parameters()).device
    with torch.no_grad():
        feat = encode_all(model, images, device)[0].to(device)
        s = model.standardise(feat)
        mu, _ = model.vae.encode(s)
        return float(((model.vae.decode(mu) - s) ** 2).mean())
