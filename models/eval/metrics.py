"""The evaluation metrics of DESIGN.md's "Evaluation protocol": PSNR / SSIM (RGB and Y),
identity (descriptor distance, rank-1 / rank-5 identification), landmark NRMSE with the
detection rate, speed and parameter count, and the per-group breakdowns.

Images are uint8 numpy arrays N x H x W x 3 (RGB) or torch tensors B x 3 x H x W in [-1, 1]
(the networks' range). Tensors are first rounded to uint8 by ``to_uint8``: every metric scores
the image as it would be saved, so a network's float output and its PNG score the same.

Every metric returns per-image arrays (length N) whose mean is the figure reported, so that
``summarise`` can break any of them down by pose or occlusion. Rates are 0/1 indicators
(``rank1``, ``rank5``, ``landmark_detection_rate``); a value that is not defined for an image is
NaN (``landmark_nrmse`` of a face dlib does not find) and the means skip it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from models.archs.identity import DlibFaceResNet
from models.data.tasks import normalize_image, to_uint8
from models.losses.identity import IdentityLoss

Images = np.ndarray | torch.Tensor

# --------------------------------------------------------------------------- images


def as_uint8_images(images: Images) -> np.ndarray:
    """Either image form -> N x H x W x 3 uint8 (numpy input is checked, not converted: a float
    array is refused rather than guessed to be in [0, 1], [0, 255] or [-1, 1])."""
    if isinstance(images, torch.Tensor):
        return to_uint8(images)
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 N x H x W x 3 images or a [-1, 1] tensor, got {a.dtype} {a.shape}"
        )
    return a


def to_unit(images: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float32 in [-1, 1]."""
    return normalize_image(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))


# --------------------------------------------------------------------------- PSNR / SSIM

# skimage returns inf for identical images. Per-image PSNR is capped here so means stay finite
# and JSON-friendly. A 128 x 128 RGB uint8 pair differing by one level in one value scores
# 10 log10(255^2 * 128 * 128 * 3) = 95.1 dB, so on RGB the cap touches identical images only; on
# Y (a float) a difference that small in one pixel can exceed it and is capped too.
PSNR_CAP = 100.0

# Wang et al. (2004)'s SSIM: an 11 x 11 Gaussian window of sigma 1.5 (skimage truncates at 3.5
# sigma: radius 5), population (not sample) covariances, K1 = 0.01 and K2 = 0.03 (skimage's
# defaults), data range 255. On RGB skimage averages the three channels' SSIM.
SSIM_SETTINGS: dict[str, Any] = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
}


def luma(images: np.ndarray) -> np.ndarray:
    """BT.601 studio-swing luma of uint8 RGB (... x 3) -> float64 (...) in [16, 235]:
    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in 0..255 (i.e. in [0, 1]
    times 255), the Y of MATLAB's ``rgb2ycbcr`` that SR papers score on, here from skimage's
    ``rgb2ycbcr``. Kept as a float, not rounded to uint8 (as BasicSR's ``to_y_channel``), and
    scored with data range 255, as SR papers do, although Y spans 16..235."""
    return rgb2ycbcr(images)[..., 0]


def _psnr(target: np.ndarray, output: np.ndarray) -> float:
    with np.errstate(divide="ignore"):  # identical images: skimage divides by a zero MSE
        value = peak_signal_noise_ratio(target, output, data_range=255)
    return min(float(value), PSNR_CAP)


def psnr_ssim(output: Images, target: Images, crop: int = 0) -> dict[str, np.ndarray]:
    """Per-image PSNR (dB, capped at ``PSNR_CAP``) and SSIM (``SSIM_SETTINGS``) of ``output``
    against ``target`` (N x H x W x 3 uint8, or B x 3 x H x W tensors in [-1, 1]), on RGB
    (``psnr``, ``ssim``) and on the BT.601 luma Y (``psnr_y``, ``ssim_y``; see ``luma``), in the
    uint8 range (data range 255). ``crop`` pixels are removed from each border first (0: none,
    the protocol's default). Returns four float64 arrays of length N."""
    out, tgt = as_uint8_images(output), as_uint8_images(target)
    if out.shape != tgt.shape:
        raise ValueError(f"output {out.shape} and target {tgt.shape} differ in shape")
    if crop < 0 or 2 * crop >= min(out.shape[1:3]):
        raise ValueError(f"crop {crop} does not fit {out.shape[1]} x {out.shape[2]} images")
    if crop:
        out, tgt = out[:, crop:-crop, crop:-crop], tgt[:, crop:-crop, crop:-crop]
    result = {k: np.empty(len(out)) for k in ("psnr", "ssim", "psnr_y", "ssim_y")}
    for i, (a, b) in enumerate(zip(out, tgt, strict=True)):
        ya, yb = luma(a), luma(b)
        result["psnr"][i] = _psnr(b, a)
        result["ssim"][i] = structural_similarity(
            b, a, data_range=255, channel_axis=-1, **SSIM_SETTINGS
        )
        result["psnr_y"][i] = _psnr(yb, ya)
        result["ssim_y"][i] = structural_similarity(yb, ya, data_range=255, **SSIM_SETTINGS)
    return result


# --------------------------------------------------------------------------- identity

DescriptorFn = Callable[[torch.Tensor], torch.Tensor]


def hole_mae(output: Images, target: Images, holes: np.ndarray) -> np.ndarray:
    """Per-image mean absolute error inside the hole, in [0, 1] (uint8 difference / 255, over
    the hole's pixels and the three channels): N outputs and targets (either image form) and
    N x H x W hole masks (true or 1 = hole). NaN for an image without a hole. Bicubic's copy of
    an occluded thumbnail leaves the hole's colour in place; this says how far each method
    fills it with the face."""
    out, tgt = as_uint8_images(output), as_uint8_images(target)
    holes = np.asarray(holes) > 0.5
    if holes.shape != out.shape[:3] or out.shape != tgt.shape:
        raise ValueError(
            f"outputs {out.shape}, targets {tgt.shape} and holes {holes.shape} do not match"
        )
    diff = np.abs(out.astype(np.int16) - tgt.astype(np.int16)).mean(-1) / 255.0
    area = holes.sum((1, 2))
    total = (diff * holes).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, total / np.maximum(area, 1), np.nan)


def descriptor_function(loss_or_network: IdentityLoss | DlibFaceResNet | DescriptorFn):
    """What maps B x 3 x S x S aligned crops in [-1, 1] to B x D descriptors: an
    ``IdentityLoss``'s ``descriptors``, a ``DlibFaceResNet`` wrapped in one, or any such callable
    (a stand-in, in tests)."""
    if isinstance(loss_or_network, IdentityLoss):
        return loss_or_network.descriptors
    if isinstance(loss_or_network, DlibFaceResNet):
        return IdentityLoss(loss_or_network).descriptors
    if callable(loss_or_network):
        return loss_or_network
    raise TypeError(f"not an identity loss, network or descriptor function: {loss_or_network!r}")


def descriptors(
    images: Images,
    loss_or_network: IdentityLoss | DlibFaceResNet | DescriptorFn,
    batch_size: int = 64,
) -> np.ndarray:
    """Descriptors (N x D float64, D = 128 for dlib's network) of aligned crops (either image
    form; rounded to uint8 first), computed in batches of ``batch_size`` without gradients on
    the device of the network."""
    fn = descriptor_function(loss_or_network)
    imgs = as_uint8_images(images)
    device = torch.device("cpu")
    if isinstance(loss_or_network, nn.Module):
        device = next(iter(loss_or_network.parameters()), torch.empty(0)).device
    out = []
    with torch.no_grad():
        for s in range(0, len(imgs), batch_size):
            batch = to_unit(imgs[s : s + batch_size]).to(device)
            out.append(fn(batch).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 128))


def gallery_indices(
    face_ids: Sequence[str], identities: Sequence[str], exclude_face_ids: Iterable[str] = ()
) -> np.ndarray:
    """The gallery rule (see ``build_gallery``) as indices into ``face_ids``, one per identity,
    in sorted identity order."""
    if len(face_ids) != len(identities):
        raise ValueError(f"{len(face_ids)} face ids but {len(identities)} identities")
    if len(set(map(str, face_ids))) != len(face_ids):
        raise ValueError("face ids must be unique")
    exclude = {str(f) for f in exclude_face_ids}
    by_identity: dict[str, list[tuple[str, int]]] = {}
    for i, (face, person) in enumerate(zip(face_ids, identities, strict=True)):
        by_identity.setdefault(str(person), []).append((str(face), i))
    picks = []
    for person in sorted(by_identity):
        faces = sorted(by_identity[person])
        others = [i for face, i in faces if face not in exclude]
        picks.append(others[0] if others else faces[0][1])
    return np.array(picks, dtype=np.int64)


def build_gallery(
    face_ids: Sequence[str],
    identities: Sequence[str],
    images: Images,
    exclude_face_ids: Iterable[str] = (),
) -> tuple[Images, list[str], list[str]]:
    """The identification gallery: one clean face per identity.

    From the clean aligned faces of the test split (``face_ids``, ``identities``, ``images``:
    N entries each, images in either form), each identity that occurs contributes exactly one
    face: the first of its faces in ``face_id`` order that is not in ``exclude_face_ids`` (the
    probes' own source faces), so that a probe is matched against the person's other photo;
    when every face of the identity is excluded (the person has only the probe's own photo),
    the first of its faces in ``face_id`` order, i.e. the probe's own source face. Identities
    come in sorted order. Returns (gallery images, their identities, their face ids).

    Excluding every probe's source face at once leaves the same face for a person whose two
    photos both give probes; ``identification_ranks`` (given face ids) applies this rule per
    probe instead, with ``exclude_face_ids`` = that probe's source face only."""
    idx = gallery_indices(face_ids, identities, exclude_face_ids)
    picked = images[torch.from_numpy(idx)] if isinstance(images, torch.Tensor) else images[idx]
    return picked, [str(identities[i]) for i in idx], [str(face_ids[i]) for i in idx]


def _distances(a: np.ndarray, b: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Euclidean distances P x G of P x D and G x D descriptors, from differences (not the
    expanded dot-product form, whose rounding would break exact ties)."""
    out = np.empty((len(a), len(b)))
    for s in range(0, len(a), chunk):
        out[s : s + chunk] = np.linalg.norm(a[s : s + chunk, None] - b[None], axis=2)
    return out


def identification_ranks(
    probe_desc: np.ndarray,
    probe_ids: Sequence[str],
    gallery_desc: np.ndarray,
    gallery_ids: Sequence[str],
    probe_face_ids: Sequence[str] | None = None,
    gallery_face_ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Rank (1 = nearest; int64, length P) of each probe's true identity among the gallery's
    identities, by Euclidean descriptor distance (dlib's metric).

    An identity's distance is that of its nearest gallery entry (the protocol's gallery has one
    per identity). Ties count against the probe: rank = the number of identities at a distance
    <= the true identity's, so a result never depends on the gallery's order and a descriptor
    equidistant from everyone is not credited. With ``probe_face_ids`` (each probe's source
    face) and ``gallery_face_ids``, the gallery may hold several faces per identity (e.g. every
    clean test face) and each probe is ranked against the one face per identity that
    ``build_gallery``'s rule picks with that probe's source face excluded. Every probe identity
    must be in the gallery.

    probe_desc: P x D, gallery_desc: G x D."""
    p, g = np.asarray(probe_desc, np.float64), np.asarray(gallery_desc, np.float64)
    if p.ndim != 2 or g.ndim != 2 or p.shape[1] != g.shape[1]:
        raise ValueError(f"descriptors P x D and G x D expected, got {p.shape} and {g.shape}")
    if len(probe_ids) != len(p) or len(gallery_ids) != len(g):
        raise ValueError("one identity per descriptor expected")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise ValueError("descriptors must be finite")
    names = sorted({str(x) for x in gallery_ids})
    column = {name: j for j, name in enumerate(names)}
    missing = {str(x) for x in probe_ids} - set(column)
    if missing:
        raise ValueError(f"probe identities {sorted(missing)[:5]} have no gallery face")
    d = _distances(p, g)
    if (probe_face_ids is None) != (gallery_face_ids is None):
        raise ValueError("give both probe_face_ids and gallery_face_ids, or neither")
    if probe_face_ids is not None:
        if len(probe_face_ids) != len(p) or len(gallery_face_ids) != len(g):
            raise ValueError("one face id per descriptor expected")
        allowed = np.zeros_like(d, dtype=bool)
        sources = np.array([str(f) for f in probe_face_ids])
        for source in np.unique(sources):
            rows = np.flatnonzero(sources == source)
            allowed[np.ix_(rows, gallery_indices(gallery_face_ids, gallery_ids, [source]))] = True
        d = np.where(allowed, d, np.inf)
    per_identity = np.full((len(p), len(names)), np.inf)
    for j, name in enumerate(gallery_ids):
        c = column[str(name)]
        per_identity[:, c] = np.minimum(per_identity[:, c], d[:, j])
    true = per_identity[np.arange(len(p)), [column[str(x)] for x in probe_ids]]
    return (per_identity <= true[:, None]).sum(1).astype(np.int64)


def rank_k(
    probe_desc: np.ndarray,
    probe_ids: Sequence[str],
    gallery_desc: np.ndarray,
    gallery_ids: Sequence[str],
    k: int,
    probe_face_ids: Sequence[str] | None = None,
    gallery_face_ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Per probe (bool, length P): is its true identity among the ``k`` nearest gallery
    identities (``identification_ranks`` <= k)? The mean is the rank-k identification rate."""
    ranks = identification_ranks(
        probe_desc, probe_ids, gallery_desc, gallery_ids, probe_face_ids, gallery_face_ids
    )
    return ranks <= k


def identity_scores(
    output_desc: np.ndarray,
    target_desc: np.ndarray,
    identities: Sequence[str],
    gallery_desc: np.ndarray,
    gallery_identities: Sequence[str],
    source_face_ids: Sequence[str] | None = None,
    gallery_face_ids: Sequence[str] | None = None,
    ks: Sequence[int] = (1, 5),
) -> dict[str, np.ndarray]:
    """``identity_metrics`` from descriptors already computed (N x D outputs and targets,
    G x D gallery): per image ``identity_distance`` (Euclidean, output vs its target; dlib calls
    two faces one person below 0.6) and ``rank{k}`` for each k (1.0 / 0.0)."""
    out, tgt = np.asarray(output_desc, np.float64), np.asarray(target_desc, np.float64)
    if out.shape != tgt.shape:
        raise ValueError(f"output {out.shape} and target {tgt.shape} descriptors differ in shape")
    result = {"identity_distance": np.linalg.norm(out - tgt, axis=1)}
    ranks = identification_ranks(
        out, identities, gallery_desc, gallery_identities, source_face_ids, gallery_face_ids
    )
    for k in ks:
        result[f"rank{k}"] = (ranks <= k).astype(np.float64)
    return result


def identity_metrics(
    outputs: Images,
    targets: Images,
    identities: Sequence[str],
    gallery: Images,
    gallery_identities: Sequence[str],
    loss_or_network: IdentityLoss | DlibFaceResNet | DescriptorFn,
    *,
    source_face_ids: Sequence[str] | None = None,
    gallery_face_ids: Sequence[str] | None = None,
    ks: Sequence[int] = (1, 5),
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Identity metrics of N outputs (aligned crops, either image form) against their N
    targets, and identification of each output (true identity ``identities[i]``) in
    ``gallery`` (G clean crops, identities ``gallery_identities``): per-image arrays
    ``identity_distance``, ``rank1``, ``rank5`` (see ``identity_scores``).

    ``gallery`` is either ``build_gallery``'s (one face per identity, for every probe), or,
    with ``source_face_ids`` (each output's source face, the pairs' ``face_id``) and
    ``gallery_face_ids``, every clean test face, from which each probe gets the person's other
    photo where there is one (``identification_ranks``). Descriptors come from
    ``loss_or_network`` (``descriptors``)."""
    out = descriptors(outputs, loss_or_network, batch_size)
    tgt = descriptors(targets, loss_or_network, batch_size)
    gal = descriptors(gallery, loss_or_network, batch_size)
    return identity_scores(
        out, tgt, identities, gal, gallery_identities, source_face_ids, gallery_face_ids, ks
    )


# --------------------------------------------------------------------------- landmarks

OUTER_EYE_CORNERS = (36, 45)  # iBUG 68-point markup: right eye's outer corner, left eye's

# dlib's HOG pyramid up-sampling for the 128 px aligned crops. HOG's smallest face is about
# 80 px and the aligned face's box about 86 px: found at 0, but with no margin for an output
# whose face is a little smaller. Measured on the 204 bundled London fronts aligned to 128 px:
# all 204 found at upsample 0, 1 and 2 (NRMSE 0.0118 / 0.0119 / 0.0120, 2.4 / 8.2 / 26.7 ms per
# crop here); on bicubic x8 of their 16 px area downsamples (the bicubic row) 174 / 180 / 178.
# 1 finds the most at a third of 2's cost.
LANDMARK_UPSAMPLE = 1


def landmark_nrmse(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """NRMSE of (... x 68 x 2) landmark sets: the mean point-to-point distance over the target's
    outer-eye-corner distance (points 36 and 45) -> (...)."""
    pred, tgt = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if pred.shape != tgt.shape or pred.shape[-2:] != (68, 2):
        raise ValueError(f"68 x 2 landmark sets expected, got {pred.shape} and {tgt.shape}")
    a, b = OUTER_EYE_CORNERS
    norm = np.linalg.norm(tgt[..., a, :] - tgt[..., b, :], axis=-1)
    return np.linalg.norm(pred - tgt, axis=-1).mean(-1) / norm


@lru_cache(maxsize=4)
def _dlib_models(upsample: int):
    from datagen.face.landmarks import DlibLandmarker, FaceDetector

    return FaceDetector("hog", upsample), DlibLandmarker()


def landmark_metrics(
    outputs: Images,
    target_landmarks: np.ndarray,
    upsample: int = LANDMARK_UPSAMPLE,
    detector: Any = None,
    landmarker: Any = None,
) -> dict[str, np.ndarray]:
    """dlib's 68 landmarks found on each output (aligned crops, either image form) against the
    target's (``target_landmarks``: N x 68 x 2, pixels of the same crop).

    Each output goes through dlib's HOG detector (``datagen.face.landmarks.FaceDetector``,
    pyramid up-sampling ``upsample``) and dlib's 68-point predictor in the largest box found
    (an aligned crop holds one face; the target is not used to choose). Per-image arrays:
    ``landmark_detection_rate`` (1.0 found, 0.0 missed: its mean is the detection rate) and
    ``landmark_nrmse`` (``landmark_nrmse``; NaN for a miss). A miss is skipped in the NRMSE
    rather than given landmarks from a fallback box: the NRMSE is the error where dlib can read
    a face, the detection rate how often it can, and the two are reported side by side.
    ``detector`` / ``landmarker``: stand-ins with the same interface (defaults: dlib's, loaded
    once per process)."""
    imgs = as_uint8_images(outputs)
    want = np.asarray(target_landmarks, np.float64)
    if want.shape != (len(imgs), 68, 2):
        raise ValueError(f"target landmarks {want.shape}, expected {(len(imgs), 68, 2)}")
    if detector is None or landmarker is None:
        default_detector, default_landmarker = _dlib_models(upsample)
        detector = detector or default_detector
        landmarker = landmarker or default_landmarker
    found = np.zeros(len(imgs))
    nrmse = np.full(len(imgs), np.nan)
    for i, img in enumerate(imgs):
        dets = detector.detect(img)
        if dets:
            found[i] = 1.0
            nrmse[i] = landmark_nrmse(landmarker(img, dets[0]), want[i])
    return {"landmark_nrmse": nrmse, "landmark_detection_rate": found}


# --------------------------------------------------------------------------- speed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: wait before reading the clock
        torch.cuda.synchronize(device)


def speed(
    model_fn: Callable[[torch.Tensor], Any],
    example_input: torch.Tensor,
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int = 5,
    warmup: int = 2,
) -> dict[str, Any]:
    """Milliseconds per image of ``model_fn`` at each batch size: the batch is
    ``example_input``'s first item (1 x ...) repeated, on its device; ``warmup`` untimed calls
    (allocator, cuDNN autotuning, lazy initialisation), then the median of ``repeats`` timed
    calls (``time.perf_counter``, CUDA synchronised), under ``torch.no_grad``.
    Returns ``{"ms_per_image": {"1": ..., "64": ...}, "device": "cpu", "repeats": 5}``."""
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    one = example_input[:1]
    device = one.device
    ms: dict[str, float] = {}
    with torch.no_grad():
        for b in batch_sizes:
            batch = one.expand(b, *one.shape[1:]).contiguous()
            for _ in range(warmup):
                model_fn(batch)
            _sync(device)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model_fn(batch)
                _sync(device)
                times.append(time.perf_counter() - start)
            ms[str(b)] = 1000.0 * statistics.median(times) / b
    return {"ms_per_image": ms, "device": str(device), "repeats": repeats}


def parameter_count(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones once; ``trainable_only``: those requiring grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- breakdowns


def _label(value: Any) -> str | None:
    """A group label as a JSON key: integral numbers without a decimal point ("-40"), other
    numbers as ``%g``, anything else as ``str``; None and NaN mean "not in this grouping"."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
        return f"{value:g}"
    return str(value)


def _means(per_image: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(rows.size)}
    for name, values in per_image.items():
        v = values[rows]
        v = v[~np.isnan(v)]
        out[name] = float(v.mean()) if v.size else None  # None: no image had the value
    return out


def summarise(
    per_image: Mapping[str, Sequence[float] | np.ndarray],
    groups: Mapping[str, Sequence[Any] | np.ndarray] | None = None,
) -> dict[str, Any]:
    """Means of per-image metrics (each a length-N array; NaN skipped, booleans as 0/1), overall
    and per group: ``{"overall": {"n": N, "psnr": ..., ...}, "by_<grouping>": {label: {"n":
    ..., "psnr": ..., ...}}}`` for each grouping in ``groups`` (name -> N labels, e.g.
    ``{"yaw": ..., "mask_kind": ...}`` -> ``by_yaw``, ``by_mask_kind``). Labels are JSON keys
    (see ``_label``: yaw -40.0 -> "-40"), numeric ones in numeric order, others sorted; an
    image whose label is None or NaN (e.g. a square side for an irregular mask) is in no group
    of that grouping. Plain python floats and ints throughout (``json.dumps`` takes it); a mean
    with no value (all NaN) is None."""
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in per_image.items()}
    sizes = {len(v) for v in arrays.values()}
    if len(sizes) > 1:
        raise ValueError(
            f"per-image arrays differ in length: { {k: len(v) for k, v in arrays.items()} }"
        )
    n = sizes.pop() if sizes else 0
    result: dict[str, Any] = {"overall": _means(arrays, np.arange(n))}
    for grouping, labels in (groups or {}).items():
        labels = list(labels)
        if len(labels) != n:
            raise ValueError(f"grouping {grouping!r} has {len(labels)} labels for {n} images")
        keys = [_label(x) for x in labels]
        numeric = {
            k: x for k, x in zip(keys, labels, strict=True) if k is not None and _is_number(x)
        }
        names = sorted({k for k in keys if k is not None}, key=lambda k: _order(k, numeric))
        rows = np.array([k if k is not None else "" for k in keys], dtype=object)
        valid = np.array([k is not None for k in keys], dtype=bool)
        result[f"by_{grouping}"] = {
            k: _means(arrays, np.flatnonzero(valid & (rows == k))) for k in names
        }
    return result


def _is_number(x: Any) -> bool:
    x = x.item() if isinstance(x, np.generic) else x
    return isinstance(x, int | float) and not isinstance(x, bool)


def _order(key: str, numeric: dict[str, Any]) -> tuple[int, float, str]:
    if key in numeric:
        return (0, float(numeric[key]), key)
    return (1, 0.0, key)
