"""How good are RaIN's relit faces? Realism, identity, diversity and speed on held-out faces.

``python -m datagen.reports.rain_quality --markdown --json rain_quality.json [--grid grid.png] [--speed]``
(``--speed-only`` for the speed table alone; ``--help`` for every option). The JSON holds every
figure below plus the configuration (checkpoint path, SHA-256 and metadata, k, seed, ...);
``--grid`` writes a picture of the first faces' samples, to see what the figures describe.

Every held-out (``split == test``) face of ``--faces`` (the first ``--limit`` of them, sorted by
person) is resized to the checkpoint's training size and turned into four sets of images:

- **RaIN**: ``--k`` samples per face, each face with latents of its own, drawn from ``--seed``
  and the face id (as the pairs stage gives every pair its own), decoded the way
  ``rain.relight_face`` does it. (Until 2026-12-07 every face took the same k latents: with
  k = 10 the set then held 10 lights, and its left-right figures measured those 10 draws more
  than the model: mean L-R -0.19 over them against -0.02 over 200 latents, for one model);
- **naive**: ``--k`` global tone changes per face, what one would do without a model: per image
  ``out = 255 * gain * (in / 255) ** gamma`` on every channel, gamma uniform in [0.5, 2.5] (mostly
  darkening, as NI faces are darker on average; 0.5 brightens) and gain uniform in [0.4, 1.0]
  (the exposure range of ``datagen.face3d.relight``, widened to 1). It has no direction by design:
  what RaIN should add over it is exactly the directional, shadowed light. Drawn from ``--seed``
  and the face id, so it does not depend on ``--limit`` or the order;
- **physical**: ``--k`` relit versions per face by ``datagen.face3d.relight`` with the
  ``relight`` group of ``--params`` (params.yaml), changed by ``--relight '{key: value, ...}'``
  (shading of the face's eos fit, cast shadows, ...; needs ``--fits``: without them this set is
  left out, and the output says so);
- **UI**: the faces unchanged (one per face), as a reference.

Realism (table 1). Every set, and the real NI pool ``--real`` (default: Extended Yale B, cropped;
grey, so everything is compared on luminance, Rec. 601 Y, as a grey three-channel image),
centre-cropped to a square and resized to the same size. The distances are measured on the
central box (``CENTRE``: the middle half in x and y): the Yale B crops are tighter than our
aligned faces and have no background, and the central box is face in both.

- ``Fréchet``: Fréchet distance between Gaussians fitted to VGG-19 style features: the channel
  means and deviations of relu1_1 and relu2_1 (64 + 128 channels, 384 numbers; the statistics
  AdaIN's style loss matches, at the layers that carry shading and local contrast rather than
  content) of the luminance image. The 384 numbers are standardised with the real pool's means
  and deviations and reduced by a PCA fitted on the real pool to ``--dims`` (16) components. Why
  16: the statistics are strongly correlated (brightness moves all of them), so 16 components
  keep nearly all of the real pool's variance (the JSON records how much), while a Gaussian in
  16 dimensions has 152 parameters, which the ~400 images of a set (40 faces x k = 10) estimate
  well; at 384 dimensions the covariance of such a set is singular and the distance would
  measure the sample size more than the images. Sets of fewer images (the UI row: one per face)
  read higher for the same reason: column ``Fréchet floor`` is what random subsets of the real
  pool of the set's size score against the whole pool (the estimate's bias at that size; a
  lower bound, as the subsets are part of the pool). 0 = same Gaussian.
- ``W1 hist``: Wasserstein-1 (earth mover's) distance between the pooled luminance histograms,
  in grey levels (0-255): how far, on average, a pixel's brightness must move to turn one
  histogram into the other.
- ``W1 L-R`` / ``W1 T-B``: Wasserstein-1 distance between the distributions of a lighting
  direction proxy: per image, the mean luminance of the right half of the central box minus
  that of the left half, over their sum (``L-R``, in [-1, 1]; positive = lit from the image's
  right), and the same for the top half against the bottom half (``T-B``; positive = lit from
  above; faces have some of it anyway). The table also lists each set's spread (sd) of ``L-R``:
  real NI faces spread widely, uniform light and global tone changes hardly at all.
- Row ``Yale B: half vs half``: the same distances between the real pool's two halves, split by
  subject (alternately); what "as real as real" reads, given the pool's size.

Identity (table 2). dlib's face descriptor (ResNet, 128-d; dlib calls two faces the same person
below 0.6) of each UI face against each of its NI versions (RaIN, naive, physical), next to the
UI face against its person's other photo (the other expression, among all test faces) and
against the other people's UI faces. Each image gets dlib's HOG detection and 68 landmarks, as in
``datagen.reports.pose_reality``; ``faces found`` counts the images where that found a face. Where it
does not, the UI face's landmarks (relighting moves no pixel) or, for a UI face, the faces
index's landmarks stand in, so that no image drops out of the distances: a relighting that hides
the face from the detector would otherwise look better than it is.

Diversity (table 3). Per face: the mean pairwise Euclidean distance between its k samples in the
PCA feature space above, and the per-pixel standard deviation of luminance (0-255, central box)
across its k samples, averaged over pixels; both averaged over faces. Row ``Yale B, per subject``
is the same for the real pool with a subject's photos as the samples of a face (real lighting
variety of one face).

Speed (table 4, ``--speed``): images per second for one ``--speed-size`` (128) px face, on this
CPU and on CUDA when there is one: ``relight_face`` (one encoder pass for the face, the decoder
in batches of 10 and of 16) against the loop a user would write (encoder and decoder for every
sample, batch 1), ``--speed-samples`` samples each, after a warm-up, interleaved, best of three
rounds (the machine may be shared); ``x naive`` is the ratio to the naive loop's rate.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from scipy import linalg
from scipy.stats import wasserstein_distance
from tqdm import tqdm

from datagen import rain
from datagen.core.images import square_resize, tile_grid, write_png
from datagen.core.params import group, load_params
from datagen.core.seeding import key_int
from datagen.core.tables import format_table
from datagen.face.identity import SAME_PERSON
from datagen.face3d.relight import RelightParams
from datagen.rain.pool import StylePool, folder_pool
from models.archs import vgg
from models.archs.adain import channel_stats
from models.eval import yale
from models.train.device import pick_device

CENTRE = (0.25, 0.75)  # the central box, as fractions of the image side (x and y)
DIMS = 16  # PCA components of the style features (see the module docstring)
NAIVE_GAMMA = (0.5, 2.5)
NAIVE_GAIN = (0.4, 1.0)
LABELS = {
    "rain": "RaIN",
    "naive": "naive (gamma, gain)",
    "physical": "physical (relight)",
    "ui": "UI (unchanged)",
    "real": "Yale B (the real pool)",
    "real_halves": "Yale B: half vs half",
    "real_subjects": "Yale B, per subject",
}


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class HeldOutFace:
    face_id: str
    identity: str
    image: np.ndarray  # uint8 S x S x 3, the model's size
    landmarks: np.ndarray  # 68 x 2 in that image's pixels (the faces index's)


def held_out_faces(faces_dir: Path, size: int) -> list[HeldOutFace]:
    """Every held-out face, sorted by person then face id, resized to ``size``."""
    from datagen.core.pairs import FaceImages, face_refs

    refs, _ = face_refs(faces_dir)
    reader = FaceImages(faces_dir, "hr")
    out = []
    for r in sorted((r for r in refs if r.split == "test"), key=lambda r: (r.identity, r.face_id)):
        hr = reader(r)
        out.append(
            HeldOutFace(
                r.face_id, r.identity, square_resize(hr, size), r.landmarks * size / hr.shape[1]
            )
        )
    if not out:
        raise ValueError(f"{faces_dir} has no test faces")
    return out


def luminance(images: np.ndarray) -> np.ndarray:
    """uint8 (N x) H x W x 3 -> float32 luminance (Rec. 601 Y) in [0, 1]."""
    return (np.asarray(images, np.float32) @ np.asarray(rain.LUMA, np.float32)) / 255.0


def centre(a: np.ndarray, box: tuple[float, float] = CENTRE) -> np.ndarray:
    """The central box of ``a`` (... x H x W)."""
    h, w = a.shape[-2:]
    return a[..., int(box[0] * h) : int(box[1] * h), int(box[0] * w) : int(box[1] * w)]


def naive_relight(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One global tone change (gamma, then gain) of a uint8 image; two draws, gamma first."""
    gamma = float(rng.uniform(*NAIVE_GAMMA))
    gain = float(rng.uniform(*NAIVE_GAIN))
    out = 255.0 * gain * (image.astype(np.float64) / 255.0) ** gamma
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), {"gamma": gamma, "gain": gain}


def naive_set(faces: list[HeldOutFace], k: int, seed: int) -> list[list[np.ndarray]]:
    out = []
    for f in faces:
        rng = np.random.default_rng([seed, key_int(f"naive/{f.face_id}")])
        out.append([naive_relight(f.image, rng)[0] for _ in range(k)])
    return out


def face_latents(face_id: str, k: int, seed: int, size: int) -> torch.Tensor:
    """The ``k`` latents of one face (N(0, I)), from ``seed`` and the face id."""
    rng = np.random.default_rng([seed, key_int(f"rain/{face_id}")])
    return torch.from_numpy(np.stack([rain.latent_from_rng(rng, size) for _ in range(k)]))


def rain_set(
    model: rain.RaIN,
    faces: list[HeldOutFace],
    k: int,
    seed: int,
    batch: int = 16,
    progress: bool = True,
) -> list[list[np.ndarray]]:
    return [
        rain.relight_face(
            model, f.image, face_latents(f.face_id, k, seed, model.config.latent), batch
        )
        for f in tqdm(faces, desc="RaIN", leave=False, disable=not progress)
    ]


def physical_set(
    faces: list[HeldOutFace],
    fits_dir: Path,
    k: int,
    seed: int,
    p: RelightParams | None = None,
    progress: bool = True,
) -> dict[str, list[np.ndarray]]:
    """Relit versions of the faces that have a fit, by face id (``p``: default
    ``RelightParams``)."""
    from datagen.face3d import morphable
    from datagen.face3d.relight import face_geometry, random_light, relight_with

    fits = morphable.load_fits(fits_dir)
    p = p or RelightParams()
    out = {}
    for f in tqdm(faces, desc="physical", leave=False, disable=not progress):
        if f.face_id not in fits:
            continue
        fit = morphable.fit_from_record(fits[f.face_id])
        geometry = face_geometry(fit, f.image.shape[0])
        out[f.face_id] = [
            relight_with(
                f.image,
                fit,
                random_light(np.random.default_rng([seed, key_int(f"physical/{f.face_id}"), j]), p),
                p.shadows,
                geometry,
            )[0]
            for j in range(k)
        ]
    return out


# ---------------------------------------------------------------- features and distances


def style_features(
    encoder: vgg.Encoder, lum: np.ndarray, batch: int = 32, progress: bool = True
) -> np.ndarray:
    """Luminance images (N x H x W in [0, 1]) -> N x 384: channel means and deviations of
    relu1_1 and relu2_1 of the grey three-channel image."""
    device = next(encoder.parameters()).device
    out = []
    for i in tqdm(
        range(0, len(lum), batch), desc="VGG features", leave=False, disable=not progress
    ):
        x = torch.from_numpy(np.ascontiguousarray(lum[i : i + batch], np.float32)).to(device)
        with torch.no_grad():
            feats = encoder(x[:, None].expand(-1, 3, -1, -1), layers=2)
        out.append(torch.cat([torch.cat(channel_stats(f), 1) for f in feats], 1).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 384))


@dataclass(frozen=True)
class Pca:
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # dims x features
    explained: float  # share of the (standardised) variance the components keep

    def project(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.components.T


def fit_pca(x: np.ndarray, dims: int) -> Pca:
    """PCA of the standardised rows of ``x`` (each feature divided by its deviation)."""
    x = np.asarray(x, np.float64)
    mean, sd = x.mean(0), x.std(0)
    scale = np.where(sd > 1e-9 * max(sd.max(), 1e-30), sd, 1.0)
    _, s, vt = np.linalg.svd((x - mean) / scale, full_matrices=False)
    dims = min(dims, len(s))
    var = s**2
    return Pca(mean, scale, vt[:dims], float(var[:dims].sum() / max(var.sum(), 1e-30)))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (N x D each):
    |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)). Needs two rows each."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    diff = a.mean(0) - b.mean(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        root = linalg.sqrtm(ca @ cb)
    if caught or not np.isfinite(root).all():
        # a singular product (fewer images than dimensions): nudge both, as pytorch-fid does
        eps = np.eye(len(ca)) * 1e-6 * max(np.trace(ca) + np.trace(cb), 1e-12) / len(ca)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            root = linalg.sqrtm((ca + eps) @ (cb + eps))
    d = diff @ diff + np.trace(ca) + np.trace(cb) - 2 * np.trace(np.real(root))
    return float(max(d, 0.0))


def histogram(lum: np.ndarray) -> np.ndarray:
    """Counts of 8-bit grey levels over every pixel of ``lum`` (any shape, in [0, 1])."""
    levels = np.clip(np.round(np.asarray(lum) * 255), 0, 255).astype(np.int64)
    return np.bincount(levels.ravel(), minlength=256).astype(np.float64)


def histogram_w1(h1: np.ndarray, h2: np.ndarray) -> float:
    """Wasserstein-1 distance between two grey-level histograms, in grey levels."""
    levels = np.arange(256.0)
    return float(wasserstein_distance(levels, levels, h1, h2))


def asymmetry(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image (N x H x W luminance): (right - left) / (right + left) and (top - bottom) /
    (top + bottom), of the halves' mean luminance in the central box."""
    c = centre(np.asarray(lum, np.float64))
    h, w = c.shape[-2:]
    left, right = c[..., : w // 2].mean((-2, -1)), c[..., w - w // 2 :].mean((-2, -1))
    top, bottom = c[..., : h // 2, :].mean((-2, -1)), c[..., h - h // 2 :, :].mean((-2, -1))
    return (right - left) / (right + left + 1e-6), (top - bottom) / (top + bottom + 1e-6)


def w1(a: np.ndarray, b: np.ndarray) -> float:
    return float(wasserstein_distance(a, b)) if len(a) and len(b) else float("nan")


@dataclass
class Measured:
    """What the realism and diversity figures need of one set of images."""

    features: np.ndarray  # N x dims, PCA space
    hist: np.ndarray  # 256 grey-level counts of the central boxes
    lr: np.ndarray  # N, left-right asymmetry
    tb: np.ndarray  # N, top-bottom asymmetry
    mean_luminance: float  # central boxes, 0-255


def measure(lum: np.ndarray, raw_features: np.ndarray, pca: Pca) -> Measured:
    lr, tb = asymmetry(lum)
    c = centre(lum)
    return Measured(
        pca.project(raw_features),
        histogram(c),
        lr,
        tb,
        float(c.mean() * 255) if c.size else float("nan"),
    )


def frechet_floor(real: np.ndarray, n: int, draws: int = 5, seed: int = 0) -> float:
    """Mean Fréchet distance of ``draws`` random ``n``-image subsets of the real features to all
    of them: what a set of ``n`` images as real as the pool itself scores, as the estimate's
    bias from the sample size (a subset is not independent of the pool: a lower bound)."""
    if n < 2 or n >= len(real):
        return float("nan")
    rng = np.random.default_rng(seed)
    return float(
        np.mean(
            [
                frechet_distance(real[rng.choice(len(real), n, replace=False)], real)
                for _ in range(draws)
            ]
        )
    )


def realism_row(s: Measured, real: Measured) -> dict[str, Any]:
    return {
        "images": len(s.lr),
        "frechet": frechet_distance(s.features, real.features),
        "frechet_floor": frechet_floor(real.features, len(s.lr)),
        "w1_histogram": histogram_w1(s.hist, real.hist),
        "w1_lr": w1(s.lr, real.lr),
        "w1_tb": w1(s.tb, real.tb),
        "mean_luminance": s.mean_luminance,
        "lr_mean": float(s.lr.mean()) if len(s.lr) else float("nan"),
        "lr_sd": float(s.lr.std()) if len(s.lr) else float("nan"),
        "tb_mean": float(s.tb.mean()) if len(s.tb) else float("nan"),
        "tb_sd": float(s.tb.std()) if len(s.tb) else float("nan"),
    }


def subset(m: Measured, idx: np.ndarray, lum: np.ndarray) -> Measured:
    return Measured(
        m.features[idx],
        histogram(centre(lum[idx])),
        m.lr[idx],
        m.tb[idx],
        float(centre(lum[idx]).mean() * 255),
    )


def halves(groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the two halves of the real pool, split by subject, alternately."""
    names = sorted(set(groups))
    a = {g for i, g in enumerate(names) if i % 2 == 0}
    idx = np.arange(len(groups))
    inside = np.array([g in a for g in groups], bool)
    return idx[inside], idx[~inside]


def mean_pairwise(x: np.ndarray) -> float:
    """Mean Euclidean distance over the unordered pairs of rows of ``x``."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return float("nan")
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    return float(d[np.triu_indices(len(x), 1)].mean())


def pixel_spread(lum: np.ndarray) -> float:
    """Per-pixel deviation (ddof 1, 0-255) of luminance across the samples ``lum`` (k x H x W)
    of one face, in the central box, averaged over pixels."""
    if len(lum) < 2:
        return float("nan")
    return float(centre(lum).std(0, ddof=1).mean() * 255)


def diversity(groups: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Per group (PCA features k x dims, luminance k x H x W): the two spreads, averaged."""
    feat = [mean_pairwise(f) for f, _ in groups if len(f) > 1]
    pix = [pixel_spread(lum) for _, lum in groups if len(lum) > 1]
    return {
        "faces": len(feat),
        "samples_per_face": float(np.mean([len(f) for f, _ in groups])) if groups else 0.0,
        "feature_distance": float(np.mean(feat)) if feat else float("nan"),
        "pixel_std": float(np.mean(pix)) if pix else float("nan"),
    }


def share_over(values: np.ndarray, threshold: float) -> float:
    """Share of ``values`` whose magnitude exceeds ``threshold`` (NaN for none)."""
    v = np.abs(np.asarray(values, np.float64))
    return float((v > threshold).mean()) if len(v) else float("nan")


def asymmetry_section(
    measured: dict[str, Measured], real: Measured, real_bins: Sequence[str | None]
) -> dict[str, Any]:
    """How many images of each set are really side-lit (see the module docstring): the share
    whose |L-R| (|T-B|) exceeds the real pool's median |L-R| (|T-B|), and the share whose |L-R|
    exceeds the median |L-R| of each azimuth bin of the real pool (``real_bins``: each real
    image's bin label, None where its file name gives no azimuth)."""
    labels = [b for b in dict.fromkeys(real_bins) if b is not None]
    order = sorted(labels, key=lambda b: float(b.split("-")[0]))
    bins = np.asarray([b or "" for b in real_bins])
    medians = {b: float(np.median(np.abs(real.lr[bins == b]))) for b in order}
    lr_median = float(np.median(np.abs(real.lr)))
    tb_median = float(np.median(np.abs(real.tb)))
    out: dict[str, Any] = {
        "real_median_abs_lr": lr_median,
        "real_median_abs_tb": tb_median,
        "bin_median_abs_lr": medians,
        "bin_images": {b: int((bins == b).sum()) for b in order},
        "sets": {},
    }
    for name, m in {**measured, "real": real}.items():
        out["sets"][name] = {
            "images": len(m.lr),
            "lr_over_median": share_over(m.lr, lr_median),
            "tb_over_median": share_over(m.tb, tb_median),
            "lr_over_bin_median": {b: share_over(m.lr, t) for b, t in medians.items()},
        }
    return out


# ---------------------------------------------------------------- identity


@dataclass(frozen=True)
class Descriptor:
    found: bool  # dlib found a face in the image itself
    landmarks: np.ndarray  # 68 x 2: its own, or the stand-in where it found none
    vector: np.ndarray  # 128-d


class Identity:
    """dlib descriptors the way ``pose_reality.Measurer`` takes them (HOG detection, 68
    landmarks, ResNet descriptor), with stand-in landmarks where detection fails."""

    def __init__(self) -> None:
        from datagen.reports.pose_reality import Measurer

        self.m = Measurer()

    def __call__(self, rgb: np.ndarray, fallback: np.ndarray) -> Descriptor:
        lm = self.m.landmarks(rgb)
        use = lm if lm is not None else np.asarray(fallback, np.float64)
        return Descriptor(lm is not None, use, self.m.descriptor(rgb, use))


def dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def distance_stats(d: list[float], found: int, images: int) -> dict[str, Any]:
    a = np.asarray(d, np.float64)
    out: dict[str, Any] = {"pairs": len(a), "faces_found": found, "images": images}
    if len(a):
        out.update(
            mean=float(a.mean()),
            sd=float(a.std()),
            below_threshold=float((a < SAME_PERSON).mean()),
        )
    return out


def identity_section(
    measured: list[HeldOutFace],
    everyone: list[HeldOutFace],
    sets: dict[str, dict[str, list[np.ndarray]]],
    progress: bool = True,
) -> dict[str, Any]:
    """Distances UI vs NI (per set), UI vs the person's other photos, UI vs other people."""
    ident = Identity()
    ui = {
        f.face_id: ident(f.image, f.landmarks)
        for f in tqdm(everyone, desc="identity: UI", leave=False, disable=not progress)
    }
    out: dict[str, Any] = {}
    for name, images in sets.items():
        d, found, n = [], 0, 0
        todo = [(fid, im) for fid, ims in images.items() for im in ims]
        for fid, im in tqdm(todo, desc=f"identity: {name}", leave=False, disable=not progress):
            got = ident(im, ui[fid].landmarks)
            d.append(dist(got.vector, ui[fid].vector))
            found += got.found
            n += 1
        out[name] = distance_stats(d, found, n)
    ids = [f.face_id for f in measured]
    same = [
        (a.face_id, b.face_id)
        for a in measured
        for b in everyone
        if b.identity == a.identity and b.face_id != a.face_id
    ]
    other = {
        tuple(sorted((a.face_id, b.face_id)))
        for a in measured
        for b in everyone
        if b.identity != a.identity
    }
    used = {x for pair in [*same, *other] for x in pair} | set(ids)
    ui_found = sum(ui[x].found for x in used)
    out["same_person"] = distance_stats(
        [dist(ui[a].vector, ui[b].vector) for a, b in same], ui_found, len(used)
    )
    out["other_people"] = distance_stats(
        [dist(ui[a].vector, ui[b].vector) for a, b in sorted(other)], ui_found, len(used)
    )
    return out


# ---------------------------------------------------------------- speed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampling_speed(
    model: rain.RaIN,
    face: np.ndarray,
    n: int = 40,
    batches: tuple[int, ...] = (10, 16),
    rounds: int = 3,
) -> dict[str, Any]:
    """Images per second relighting one face ``n`` times: ``relight_face`` at each decoder batch
    size against one full encoder + decoder pass per sample (batch 1, with the same conversion
    to uint8). One warm-up call each, then ``rounds`` interleaved rounds; the best round counts."""
    device = next(model.parameters()).device
    z = rain.latents(0, n, model.config.latent)
    x, (h, w) = rain.pad8(rain.to_tensor(face).to(device))

    def naive() -> None:
        with torch.no_grad():
            for i in range(n):
                rain.to_uint8(model.relight(x, z[i : i + 1].to(device))[..., :h, :w])

    methods = {f"batched {b}": (lambda b=b: rain.relight_face(model, face, z, b)) for b in batches}
    methods["naive"] = naive
    with torch.no_grad():  # warm-up: allocations, kernel choices, caches
        for b in batches:
            rain.relight_face(model, face, z[:b], b)
        rain.to_uint8(model.relight(x, z[:1].to(device)))
    best = {k: float("inf") for k in methods}
    for _ in range(rounds):
        for k, fn in methods.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            best[k] = min(best[k], time.perf_counter() - t)
    rates = {k: n / max(t, 1e-12) for k, t in best.items()}
    return {
        "device": str(device),
        "size": int(face.shape[0]),
        "samples": n,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "methods": {
            k: {
                "batch": 1 if k == "naive" else int(k.split()[1]),
                "seconds": best[k],
                "images_per_second": rates[k],
                "ratio_to_naive": rates[k] / rates["naive"],
            }
            for k in methods
        },
    }


# ---------------------------------------------------------------- tables


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def asymmetry_table(a: dict[str, Any], markdown: bool) -> str:
    bins = list(a["bin_median_abs_lr"])
    rows = [
        [
            LABELS.get(name, name),
            str(v["images"]),
            _f(100 * v["lr_over_median"], ".0f"),
            _f(100 * v["tb_over_median"], ".0f"),
            *(_f(100 * v["lr_over_bin_median"][b], ".0f") for b in bins),
        ]
        for name, v in a["sets"].items()
    ]
    head = [
        "set",
        "images",
        f"% |L-R| > {a['real_median_abs_lr']:.2f}",
        f"% |T-B| > {a['real_median_abs_tb']:.2f}",
        *(f"% |L-R| > {a['bin_median_abs_lr'][b]:.2f} (az {b})" for b in bins),
    ]
    return (
        "Side-lit shares: images whose |asymmetry| exceeds the real pool's median, overall and "
        "that of each real azimuth bin (|azimuth|, degrees)\n\n"
        + format_table(head, rows, markdown)
    )


def tables(r: dict[str, Any], markdown: bool) -> str:
    parts = []
    if "realism" in r:
        rows = []
        for name, v in r["realism"]["sets"].items():
            rows.append(
                [
                    LABELS[name],
                    str(v["images"]),
                    _f(v["frechet"], ".2f"),
                    _f(v["frechet_floor"], ".2f"),
                    _f(v["w1_histogram"], ".1f"),
                    _f(v["w1_lr"], ".3f"),
                    _f(v["w1_tb"], ".3f"),
                    _f(v["lr_sd"], ".3f"),
                    _f(v["mean_luminance"], ".0f"),
                ]
            )
        pca = r["realism"]["pca"]
        parts.append(
            f"Realism: distance to the real NI pool ({r['realism']['real_images']} images), "
            f"central box, luminance; PCA {pca['dims']} dims keep "
            f"{100 * pca['explained']:.1f}% of the real pool's variance\n\n"
            + format_table(
                [
                    "set",
                    "images",
                    f"Fréchet (VGG style, PCA {pca['dims']})",
                    "Fréchet floor",
                    "W1 hist (grey levels)",
                    "W1 L-R",
                    "W1 T-B",
                    "L-R sd",
                    "mean luminance",
                ],
                rows,
                markdown,
            )
        )
    if "realism" in r and "asymmetry" in r["realism"]:
        parts.append(asymmetry_table(r["realism"]["asymmetry"], markdown))
    if "identity" in r:
        rows = []
        for key, label in (
            ("rain", "UI vs its RaIN samples"),
            ("naive", "UI vs its naive versions"),
            ("physical", "UI vs its physical relights"),
            ("same_person", "UI vs the person's other UI photo"),
            ("other_people", "UI vs other people's UI"),
        ):
            d = r["identity"].get(key)
            if d is None:
                continue
            rows.append(
                [
                    label,
                    str(d["pairs"]),
                    f"{d['faces_found']}/{d['images']}",
                    f"{d['mean']:.3f} ± {d['sd']:.3f}" if d["pairs"] else "-",
                    f"{100 * d['below_threshold']:.0f}%" if d["pairs"] else "-",
                ]
            )
        parts.append(
            "Identity: dlib descriptor distance\n\n"
            + format_table(
                ["pairs compared", "pairs", "faces found", "mean ± sd", f"< {SAME_PERSON}"],
                rows,
                markdown,
            )
        )
    if "diversity" in r:
        rows = [
            [
                LABELS[name],
                str(v["faces"]),
                _f(v["samples_per_face"], ".0f"),
                _f(v["feature_distance"], ".2f"),
                _f(v["pixel_std"], ".1f"),
            ]
            for name, v in r["diversity"].items()
        ]
        parts.append(
            "Diversity: spread of one face's samples\n\n"
            + format_table(
                [
                    "set",
                    "faces",
                    "samples per face",
                    "mean pairwise distance (PCA)",
                    "pixel luminance sd",
                ],
                rows,
                markdown,
            )
        )
    if "speed" in r:
        rows = [
            [
                f"{s['device']} ({s['threads']} threads)" if s["device"] == "cpu" else s["device"],
                name,
                str(m["batch"]),
                f"{m['images_per_second']:.1f}",
                f"{m['ratio_to_naive']:.2f}",
            ]
            for s in r["speed"]
            for name, m in s["methods"].items()
        ]
        s0 = r["speed"][0]
        parts.append(
            f"Speed: {s0['samples']} samples of one {s0['size']} px face, the best of "
            f"{s0['rounds']} timed round(s) after a warm-up\n\n"
            + format_table(["device", "method", "batch", "images/s", "x naive"], rows, markdown)
        )
    parts.extend(f"Note: {n}" for n in r.get("notes", []))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the command


def real_pool(folder: Path, size: int) -> StylePool:
    return folder_pool((str(folder),), size)


def make_sets(
    model: rain.RaIN,
    faces: list[HeldOutFace],
    fits_dir: Path | None,
    k: int,
    seed: int,
    batch: int = 16,
    progress: bool = True,
    relight_p: RelightParams | None = None,
) -> tuple[dict[str, dict[str, list[np.ndarray]]], list[str]]:
    """The NI sets (RaIN, naive and, with fits, physical): per set, face id -> its k images;
    and notes on what is missing."""
    ids = [f.face_id for f in faces]
    sets = {
        "rain": dict(zip(ids, rain_set(model, faces, k, seed, batch, progress), strict=True)),
        "naive": dict(zip(ids, naive_set(faces, k, seed), strict=True)),
    }
    notes = []
    if fits_dir is None:
        notes.append("no --fits folder: the physical set is left out")
    else:
        sets["physical"] = physical_set(faces, fits_dir, k, seed, relight_p, progress)
        if missing := len(faces) - len(sets["physical"]):
            notes.append(f"{missing} test face(s) have no fit and no physical relights")
    return sets, notes


def by_subject(subjects: Sequence[str]) -> list[np.ndarray]:
    """Indices of each subject's images, subjects sorted."""
    groups = np.asarray(subjects)
    return [np.flatnonzero(groups == s) for s in sorted(set(subjects))]


def realism_and_diversity(
    encoder: vgg.Encoder,
    sets: dict[str, dict[str, list[np.ndarray]]],
    faces: list[HeldOutFace],
    pool: StylePool,
    dims: int,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Sections realism and diversity (see the module docstring), and notes."""
    real_lum = luminance(pool.images)
    real_raw = style_features(encoder, centre(real_lum), progress=progress)
    pca = fit_pca(real_raw, dims)
    real = measure(real_lum, real_raw, pca)

    def measured(images: list[np.ndarray]) -> tuple[Measured, np.ndarray]:
        lum = luminance(np.stack(images)) if images else np.zeros((0, 8, 8), np.float32)
        return measure(lum, style_features(encoder, centre(lum), progress=progress), pca), lum

    rows: dict[str, Any] = {}
    div: dict[str, Any] = {}
    kept: dict[str, Measured] = {}
    for name, by_face in sets.items():
        m, lum = measured([im for ims in by_face.values() for im in ims])
        kept[name] = m
        rows[name] = realism_row(m, real)
        ends = np.cumsum([0, *(len(ims) for ims in by_face.values())])
        div[name] = diversity(
            [(m.features[i:j], lum[i:j]) for i, j in zip(ends[:-1], ends[1:], strict=True)]
        )
    kept["ui"] = measured([f.image for f in faces])[0]
    rows["ui"] = realism_row(kept["ui"], real)

    notes = []
    subjects = [Path(s).parent.name for s in pool.sources]
    a, b = halves(subjects)
    if len(a) > 1 and len(b) > 1:
        rows["real_halves"] = realism_row(subset(real, a, real_lum), subset(real, b, real_lum))
    else:
        notes.append("the real pool has one subject (folder): no half-vs-half row")
    div["real_subjects"] = diversity(
        [(real.features[idx], real_lum[idx]) for idx in by_subject(subjects)]
    )
    names = [yale.parse_name(Path(s).name) for s in pool.sources]
    real_bins = [None if n is None else yale.azimuth_bin(n.azimuth) for n in names]
    if all(b is None for b in real_bins):
        notes.append(
            "no real file name gives a light azimuth (<subject>_P00A<az>E<el>): the "
            "side-lit shares have no per-bin columns"
        )
    realism = {
        "real_images": len(pool.images),
        "real_subjects": len(set(subjects)),
        "pca": {"dims": int(pca.components.shape[0]), "explained": pca.explained},
        "sets": rows,
        "asymmetry": asymmetry_section(kept, real, real_bins),
    }
    return realism, div, notes


def quality(
    model: rain.RaIN,
    faces: list[HeldOutFace],
    everyone: list[HeldOutFace],
    pool: StylePool,
    fits_dir: Path | None,
    k: int,
    seed: int,
    dims: int,
    batch: int = 16,
    progress: bool = True,
    relight_p: RelightParams | None = None,
) -> dict[str, Any]:
    """Sections realism, identity and diversity for ``faces`` (``everyone``: all test faces,
    the identity references), and notes."""
    sets, notes = make_sets(model, faces, fits_dir, k, seed, batch, progress, relight_p)
    realism, div, more = realism_and_diversity(model.encoder, sets, faces, pool, dims, progress)
    return {
        "realism": realism,
        "identity": identity_section(faces, everyone, sets, progress),
        "diversity": div,
        "notes": notes + more,
        "sets": sets,
    }


def grid_rows(
    faces: list[HeldOutFace], sets: dict[str, dict[str, list[np.ndarray]]], per_set: int = 4
) -> list[list[np.ndarray]]:
    """Per face: the UI face, then up to ``per_set`` images of each set (a blank where a set
    has fewer, so that the columns line up)."""
    blank = np.full_like(faces[0].image, 255)
    rows = []
    for f in faces:
        row = [f.image]
        for by_face in sets.values():
            ims = by_face.get(f.face_id, [])[:per_set]
            row += [*ims, *[blank] * (per_set - len(ims))]
        rows.append(row)
    return rows


def relight_params(params_file: Path, override: str) -> RelightParams:
    """The ``relight`` group of ``params_file`` (every default when the file is missing), with
    the keys of ``override`` (a YAML mapping) replaced."""
    base = group(load_params(params_file), "relight") if params_file.is_file() else {}
    extra = yaml.safe_load(override) if override.strip() else {}
    if not isinstance(extra, dict):
        raise ValueError(f"--relight must be a YAML mapping of relight keys, got {override!r}")
    return RelightParams.from_params({**base, **extra})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.reports.rain_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--checkpoint", default="artifacts/rain", help="RaIN checkpoint or folder")
    ap.add_argument("--faces", default="data/faces", help="faces dataset (its test split is used)")
    ap.add_argument(
        "--fits", default="data/fits", help="eos fits for the physical set ('' to leave it out)"
    )
    ap.add_argument(
        "--real",
        default="../shared/data/yale-b-cropped",
        help="folder of real non-uniformly lit faces, searched recursively; a subject per folder",
    )
    ap.add_argument(
        "--params", default="params.yaml", help="its relight group makes the physical set"
    )
    ap.add_argument(
        "--relight",
        default="",
        help="relight keys over --params', as YAML, e.g. '{azimuth: 60, ambient: [0.1, 0.3]}'",
    )
    ap.add_argument("--k", type=int, default=10, help="samples per face and set (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="latents and random draws (default 0)")
    ap.add_argument("--limit", type=int, default=0, help="first N test faces only (0: all)")
    ap.add_argument("--dims", type=int, default=DIMS, help=f"PCA dims (default {DIMS})")
    ap.add_argument("--batch", type=int, default=16, help="RaIN decoder batch (default 16)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto, for sets (a)-(c)")
    ap.add_argument("--speed", action="store_true", help="also measure sampling speed")
    ap.add_argument("--speed-only", action="store_true", help="only the speed measurement")
    ap.add_argument("--speed-size", type=int, default=128, help="face size for --speed")
    ap.add_argument("--speed-samples", type=int, default=40, help="samples per method")
    ap.add_argument("--speed-rounds", type=int, default=3, help="timed rounds (best counts)")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument(
        "--grid",
        help="write a PNG here: per face (the first --grid-faces), the UI face, then its first "
        "RaIN, naive and physical samples (up to 4 each)",
    )
    ap.add_argument("--grid-faces", type=int, default=6, help="faces in --grid (default 6)")
    ap.add_argument("--markdown", action="store_true", help="markdown tables")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    if args.k < 2 or args.limit < 0 or min(args.dims, args.speed_samples, args.speed_rounds) < 1:
        print(
            "--k must be >= 2, --limit >= 0, --dims, --speed-samples and --speed-rounds >= 1",
            file=sys.stderr,
        )
        return 2
    real_dir = Path(args.real)
    if not args.speed_only and not real_dir.is_dir():
        print(
            f"--real {real_dir}: no such folder. The realism figures need a folder of real "
            "non-uniformly lit faces, by default the Extended Yale B cropped set at "
            "../shared/data/yale-b-cropped (see its README); pass --real or --speed-only",
            file=sys.stderr,
        )
        return 2
    progress = not args.no_progress
    try:
        relight_p = relight_params(Path(args.params), args.relight)
    except (ValueError, KeyError, yaml.YAMLError) as e:
        print(f"rain_quality: relight params: {e}", file=sys.stderr)
        return 2
    try:
        checkpoint = rain.checkpoint_file(args.checkpoint)
        sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        model = rain.load(checkpoint, pick_device(args.device))
        everyone = held_out_faces(Path(args.faces), model.config.size)
    except (rain.CheckpointError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"rain_quality: {e}", file=sys.stderr)
        return 2
    faces = everyone[: args.limit or None]
    result: dict[str, Any] = {
        "config": {
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": sha,
            "checkpoint_metadata": rain.checkpoint_metadata(checkpoint),
            "model": asdict(model.config),
            "faces": args.faces,
            "test_faces": len(faces),
            "all_test_faces": len(everyone),
            "k": args.k,
            "seed": args.seed,
            "real": str(real_dir),
            "centre_box": CENTRE,
            "naive": {"gamma": NAIVE_GAMMA, "gain": NAIVE_GAIN},
            "relight": relight_p.outputs(),
        },
        "notes": [],
    }
    timings = {}
    if not args.speed_only:
        try:
            pool = real_pool(real_dir, model.config.size)
        except (FileNotFoundError, ValueError) as e:
            print(f"--real: {e}", file=sys.stderr)
            return 2
        fits = (
            Path(args.fits) if args.fits and (Path(args.fits) / "index.parquet").is_file() else None
        )
        if args.fits and fits is None:
            print(
                f"rain_quality: no fits at {args.fits}; leaving the physical set out",
                file=sys.stderr,
            )
        t = time.perf_counter()
        q = quality(
            model,
            faces,
            everyone,
            pool,
            fits,
            args.k,
            args.seed,
            args.dims,
            args.batch,
            progress,
            relight_p,
        )
        result["notes"].extend(q.pop("notes"))
        sets = q.pop("sets")
        result.update(q)
        if args.grid and args.grid_faces > 0:
            write_png(Path(args.grid), tile_grid(grid_rows(faces[: args.grid_faces], sets)))
            result["grid"] = {"path": args.grid, "columns": ["ui", *(f"{n} x4" for n in sets)]}
        timings["quality"] = time.perf_counter() - t
    if args.speed or args.speed_only:
        t = time.perf_counter()
        face = square_resize(everyone[0].image, args.speed_size)
        devices = [torch.device("cpu")] + (
            [torch.device("cuda")] if torch.cuda.is_available() else []
        )
        result["speed"] = []
        for dev in devices:
            # the model already loaded (the checkpoint file may have changed since)
            m = model if next(model.parameters()).device == dev else copy.deepcopy(model).to(dev)
            result["speed"].append(
                sampling_speed(m, face, args.speed_samples, rounds=args.speed_rounds)
            )
        timings["speed"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    result["seconds"] = timings
    print(tables(result, args.markdown))
    print(f"\n{timings['total']:.0f} s", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(plain(result), indent=1) + "\n")
    return 0


def plain(v: Any) -> Any:
    """``v`` as strict JSON: numpy scalars and arrays as numbers and lists, NaN as null."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


if __name__ == "__main__":
    sys.exit(main())
