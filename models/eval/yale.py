"""Real shaded faces (issue 13, item 5): Extended Yale B cropped, beyond the synthetic test.

Every frontal-pose image ``<subject>_P00A<azimuth>E<elevation>`` of a subject goes through the
project's ``faces`` ingest (dlib detection, landmarks, alignment to the 128 px template; dark
faces defeat the detector and are recorded as rejects), is degraded to 16 x 16 by the pairs
stages' degrade step (the illumination task's misalignment included) and is hallucinated by a
method; the output is scored against the subject's frontally lit ``A+000E+00`` image (through
the same ingest) with the synthetic protocol's metric code (``models.eval.metrics``).

The cropped photos fill their frames, which defeats dlib's HOG detector, so each gets a grey
margin before the ingest (``real_photos.add_margin``); two thirds of the aligned crop then lie outside the
photo, so PSNR / SSIM are also given inside the photo (``photo_box``, ``PHOTO_KEYS``).

Identity: descriptor distance to that target, and rank-k identification among the targets of
every evaluated subject (one face per subject); rank-k is only reported when the gallery has
more than k subjects (with k or fewer it is 1 by construction). A network whose ``forward``
takes a guide (CPGAN) gets one guide for every probe: the first train face of ``data/faces`` by
``face_id``. Breakdowns per light-azimuth bin (``AZIMUTH_BINS``) and per subject.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from datagen.core.params import group
from datagen.core.seeding import sample_seed
from datagen.core.shards import ShardDataset
from datagen.face.degrade import DegradeParams, degrade
from datagen.stages.pairs_illumination import IlluminationParams
from models.eval import metrics, real_photos
from models.eval.protocol import KEYS, run_method, takes_guide
from models.eval.real_photos import ingest, staged_name
from models.train.device import pick_device

TASK = "illumination"  # the task whose networks this evaluates (CPGAN's)
# |azimuth| bins in degrees, [lo, hi) except the last, [85, 130]. Yale's azimuths are 0, 5, 10,
# 15 (near-frontal light: 16 images per subject), 20, 25, 35 (16), 50, 60, 70 (strong side
# light: 14), 85, 95, 110, 120, 130 (light from the side or behind, half the face dark: 18).
AZIMUTH_BINS = ((0, 20), (20, 50), (50, 85), (85, 130))
# The degrade draws come from the illumination pairs' stage id with keys of their own
# ("yale/<source>"), so no Yale draw repeats a training pair's, and a rerun draws the same.
SEED_STAGE, SEED_PREFIX = "pairs_illumination", "yale/"
# PSNR / SSIM again inside each target's photo_box: most of the aligned crop lies outside
# the tightly cropped photo (grey margin, or the ingest's border fill), where bicubic's flat
# copy of the margin scores perfectly and a network that paints hair and background does not.
PHOTO_KEYS = ("psnr_photo", "ssim_photo", "psnr_y_photo", "ssim_y_photo")
# Grey margin around each photo before the ingest, as a fraction of its longer side (see
# ``add_margin``): the cropped faces fill their frames and defeat dlib's HOG without one.
DEFAULT_MARGIN = 0.25

_NAME = re.compile(
    r"^(?P<subject>[^_]+)_P(?P<pose>\d{2})A(?P<azimuth>[+-]\d{1,3})E(?P<elevation>[+-]\d{1,2})"
    r"\.[A-Za-z]+$"
)


@dataclass(frozen=True)
class YaleName:
    """What a Yale B file name says: ``yaleB05_P00A-035E+15.png`` -> yaleB05, pose 0, light
    azimuth -35 and elevation +15 degrees."""

    subject: str
    pose: int
    azimuth: int
    elevation: int

    @property
    def is_target(self) -> bool:
        return self.azimuth == 0 and self.elevation == 0


def parse_name(name: str) -> YaleName | None:
    """A Yale B file name (no folder) -> its fields; None for anything else (the ambient-only
    ``yaleB01_P00_Ambient`` images, READMEs)."""
    m = _NAME.match(name)
    if m is None:
        return None
    return YaleName(
        m["subject"], int(m["pose"]), int(m["azimuth"]), int(m["elevation"])
    )  # int("+035") == 35, int("-035") == -35


def azimuth_bin(azimuth: float) -> str | None:
    """The ``AZIMUTH_BINS`` label of a light azimuth ("0-20", ..., "85-130"): the bin of its
    absolute value (left and right light alike); None beyond 130 degrees."""
    a = abs(azimuth)
    for i, (lo, hi) in enumerate(AZIMUTH_BINS):
        if lo <= a < hi or (i == len(AZIMUTH_BINS) - 1 and a == hi):
            return f"{lo}-{hi}"
    return None


def list_subjects(folder: str | Path, subjects: int | None = None) -> dict[str, list[Path]]:
    """Subject folder name -> its frontal-pose (P00) images, sorted; the first ``subjects``
    folders (sorted by name) that hold any."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Yale B folder {folder} does not exist")
    if subjects is not None and subjects < 1:
        raise ValueError("--subjects must be >= 1")
    found: dict[str, list[Path]] = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(
            f for f in d.iterdir() if (n := parse_name(f.name)) is not None and n.pose == 0
        )
        if files:
            found[d.name] = files
        if subjects is not None and len(found) == subjects:
            break
    if not found:
        raise FileNotFoundError(
            f"no Yale B P00A...E... images in subject folders of {folder} "
            "(expected <folder>/<subject>/<subject>_P00A+000E+00.png and the like)"
        )
    return found


def pick_guide(faces_dir: str | Path) -> tuple[torch.Tensor, str]:
    """The guide every probe gets: the first train face of ``faces_dir`` by ``face_id``
    (1 x 3 x H x W in [-1, 1]) and its face id."""
    faces_dir = Path(faces_dir)
    if not (faces_dir / "index.parquet").is_file():
        raise FileNotFoundError(
            f"{faces_dir} is not a faces dataset: a guided network takes its guide from the "
            "train faces (run `dvc repro faces`, or pass --faces)"
        )
    ds = ShardDataset(faces_dir, filter=pl.col("split") == "train", images=["hr"])
    if len(ds) == 0:
        raise ValueError(f"{faces_dir} has no train face to guide with")
    ids = ds.index["face_id"].to_list()
    first = min(range(len(ids)), key=ids.__getitem__)
    return metrics.to_unit(ds[first]["hr"].permute(1, 2, 0).numpy()[None]), ids[first]


def subject_targets(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Subject -> the ingested face of its ``A+000E+00`` photo (light from the camera's
    direction: the uniformly lit counterpart), for the subjects whose one got through."""
    return {r["identity"]: r for r in rows if parse_name(Path(r["source"]).name).is_target}


@dataclass
class Probes:
    """The scored images: LR inputs (uint8 N x 16 x 16 x 3), each one's subject, name fields,
    source, and the index of its subject's target."""

    lr: np.ndarray
    subjects: list[str]
    names: list[YaleName]
    sources: list[str]
    target_of: np.ndarray


def make_probes(
    rows: list[dict[str, Any]],
    subjects: list[str],
    params: dict[str, Any],
    progress: bool = True,
) -> Probes:
    """Degrade every accepted face of the ``subjects`` (those with a target) as the
    illumination pairs are: ``degrade`` params, ``illumination.transform``, a per-image seed."""
    d = DegradeParams.from_params(group(params, "degrade"))
    transform = IlluminationParams.from_params(group(params, TASK)).transform
    seed = int(params.get("seed", 0))
    index = {s: i for i, s in enumerate(subjects)}
    lr, subj, names, sources, target_of = [], [], [], [], []
    for r in tqdm(rows, desc="yale: degrade", unit="img", leave=False, disable=not progress):
        if r["identity"] not in index:
            continue
        hr = r["hr"].permute(1, 2, 0).numpy()
        rng = np.random.default_rng(sample_seed(seed, SEED_STAGE, SEED_PREFIX + r["source"]))
        small, _ = degrade(hr, np.asarray(r["landmarks"], np.float64), rng, d, transform)
        lr.append(small)
        subj.append(r["identity"])
        names.append(parse_name(Path(r["source"]).name))
        sources.append(r["source"])
        target_of.append(index[r["identity"]])
    return Probes(np.stack(lr), subj, names, sources, np.array(target_of, np.int64))


def score(
    outputs: np.ndarray,
    probes: Probes,
    targets: np.ndarray,
    target_landmarks: np.ndarray,
    subjects: list[str],
    target_boxes: list[tuple[int, int, int, int]] | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Per-image metrics of the outputs (uint8 N x H x W x 3) against their subjects' targets
    (one per subject, with its 68 landmarks), with the synthetic protocol's functions, subject
    by subject (a progress bar: dlib's landmarks are the slow part). With ``target_boxes``
    (each target's ``photo_box``), also PSNR / SSIM inside it (``PHOTO_KEYS``)."""
    from models.archs.identity import identity_network
    from models.losses.identity import IdentityLoss

    loss = IdentityLoss(identity_network())
    result: dict[str, np.ndarray] = {}
    out_desc = np.zeros((len(outputs), 128))
    bar = tqdm(subjects, desc="yale: score", unit="subject", leave=False, disable=not progress)
    for s, _ in enumerate(bar):
        rows = np.flatnonzero(probes.target_of == s)
        part = metrics.psnr_ssim(outputs[rows], targets[[s] * len(rows)])
        if target_boxes is not None:
            x0, y0, x1, y1 = target_boxes[s]
            inner = metrics.psnr_ssim(
                outputs[rows, y0:y1, x0:x1], targets[[s] * len(rows), y0:y1, x0:x1]
            )
            part.update({f"{k}_photo": v for k, v in inner.items()})
        part.update(metrics.landmark_metrics(outputs[rows], target_landmarks[[s] * len(rows)]))
        for k, v in part.items():
            result.setdefault(k, np.full(len(outputs), np.nan))[rows] = v
        out_desc[rows] = metrics.descriptors(outputs[rows], loss)
    gallery = metrics.descriptors(targets, loss)  # one face per subject: its target
    ks = tuple(k for k in (1, 5) if k < len(subjects))  # rank-k among <= k subjects is always 1
    result.update(
        metrics.identity_scores(
            out_desc, gallery[probes.target_of], probes.subjects, gallery, subjects, ks=ks
        )
    )
    return result


def _counts(rejects: list[dict[str, Any]], files: dict[str, list[Path]]) -> dict[str, Any]:
    """Images and rejects per subject and per azimuth bin, the rejects by reason."""
    names = {f"{s}/{staged_name(f)}": parse_name(f.name) for s, fs in files.items() for f in fs}
    images_bin = Counter(azimuth_bin(n.azimuth) for n in names.values())
    rej_bin = Counter(azimuth_bin(names[r["source"]].azimuth) for r in rejects)
    rej_subject = Counter(r["source"].split("/", 1)[0] for r in rejects)
    return {
        "images": len(names),
        "rejects": len(rejects),
        "rejects_by_reason": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        "images_by_subject": {s: len(fs) for s, fs in files.items()},
        "rejects_by_subject": {s: rej_subject.get(s, 0) for s in files},
        "images_by_azimuth_bin": {b: images_bin.get(b, 0) for b in _bin_labels()},
        "rejects_by_azimuth_bin": {b: rej_bin.get(b, 0) for b in _bin_labels()},
        "rejected": sorted(
            (
                {"source": r["source"], "reason": r["reason"], "detail": r["detail"]}
                for r in rejects
            ),
            key=lambda r: r["source"],
        ),
    }


def _bin_labels() -> list[str]:
    return [f"{lo}-{hi}" for lo, hi in AZIMUTH_BINS]


def load_method(
    method: str | None, checkpoint: str | Path | None
) -> tuple[str, torch.nn.Module | None, dict[str, Any]]:
    """``real_photos.load_method`` for an illumination checkpoint."""
    return real_photos.load_method(method, checkpoint, TASK)


def evaluate_yale(
    folder: str | Path,
    method: str | None = "bicubic",
    checkpoint: str | Path | None = None,
    *,
    params: dict[str, Any],
    subjects: int | None = None,
    margin: float = DEFAULT_MARGIN,
    faces_dir: str | Path = "data/faces",
    work_dir: str | Path | None = None,
    workers: int = 0,
    device: str = "auto",
    batch: int = 64,
    grid: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``method`` (None: the checkpoint's network; bicubic without one) on the Yale B
    images of ``folder`` (the first ``subjects`` subjects; None: all), each given a grey
    ``margin`` before the ingest (``real_photos.add_margin``). ``params``: the project's params (``faces``,
    ``shards``, ``degrade``, ``illumination``, ``seed``); ``work_dir`` keeps the ingested faces
    (None: a temporary folder); ``grid``: a sample grid PNG (LR | bicubic | method | target).
    Returns the JSON record (see the README section)."""
    method, model, info = load_method(method, checkpoint)
    guide, guide_id = None, None
    if model is not None and takes_guide(model):
        guide, guide_id = pick_guide(faces_dir)
    files = list_subjects(folder, subjects)
    with tempfile.TemporaryDirectory(prefix="yale-") as tmp:
        rows, rejects = ingest(files, Path(work_dir or tmp), params, margin, workers, progress)
    counts = _counts(rejects, files)
    targets_by_subject = subject_targets(rows)
    scored = [s for s in files if s in targets_by_subject]
    if not scored:
        raise RuntimeError(
            f"no subject's A+000E+00 image got through the faces ingest: {rejects[:3]}"
        )
    probes = make_probes(rows, scored, params, progress)
    targets = np.stack([targets_by_subject[s]["hr"].permute(1, 2, 0).numpy() for s in scored])
    target_lm = np.stack(
        [np.asarray(targets_by_subject[s]["landmarks"], np.float64) for s in scored]
    )
    lr = metrics.to_unit(probes.lr)
    outputs, _ = run_method(model, lr, targets.shape[1], pick_device(device), batch, guide)
    boxes = [targets_by_subject[s]["photo_box"] for s in scored]
    per_image = score(outputs, probes, targets, target_lm, scored, boxes, progress)
    groups = {
        "azimuth_bin": [azimuth_bin(n.azimuth) for n in probes.names],
        "subject": probes.subjects,
    }
    summary = metrics.summarise(per_image, groups)
    for part in [
        summary["overall"],
        *summary["by_azimuth_bin"].values(),
        *summary["by_subject"].values(),
    ]:
        for k in (*KEYS, *PHOTO_KEYS):
            part.setdefault(k, None)  # rank-k left out for a small gallery: an explicit null
    d = DegradeParams.from_params(group(params, "degrade"))
    record: dict[str, Any] = {
        "method": method,
        "task": TASK,
        "dataset": "extended-yale-b-cropped",
        "folder": str(folder),
        "subjects": list(files),
        "subjects_scored": scored,
        "subjects_without_target": [s for s in files if s not in targets_by_subject],
        **{k: counts[k] for k in ("images", "rejects", "rejects_by_reason")},
        "faces": len(rows),
        # accepted faces of a subject whose target was rejected: nothing to score them against
        "skipped_without_target": len(rows) - len(probes.sources),
        **summary.pop("overall"),
        "gallery_size": len(scored),
        # share of the targets' crops that is photo (the rest is margin or border fill)
        "photo_fraction": float(
            np.mean([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]) / targets.shape[1] ** 2
        ),
        "azimuth_bins": {f"{lo}-{hi}": [lo, hi] for lo, hi in AZIMUTH_BINS},
        "margin": margin,
        "guide_face_id": guide_id,
        "seed": int(params.get("seed", 0)),
        "degrade": {
            **d.outputs(),
            "transform": IlluminationParams.from_params(group(params, TASK)).transform,
        },
        **info,
        **summary,
        **{k: v for k, v in counts.items() if k not in ("images", "rejects", "rejects_by_reason")},
    }
    if grid is not None:
        write_grid(grid, probes, outputs if model is not None else None, targets)
    return record


def write_grid(
    path: str | Path, probes: Probes, outputs: np.ndarray | None, targets: np.ndarray
) -> None:
    """LR (nearest) | bicubic | method (omitted for bicubic) | target, one row per azimuth bin
    the first subject has a scored image in: its image of the smallest |azimuth| there (the
    lowest |elevation| among those), so the rows go from frontal to side light."""
    first = np.flatnonzero(probes.target_of == 0).tolist()
    picks = []
    for label in (f"{lo}-{hi}" for lo, hi in AZIMUTH_BINS):
        in_bin = [i for i in first if azimuth_bin(probes.names[i].azimuth) == label]
        if in_bin:
            n = probes.names
            picks.append(min(in_bin, key=lambda i: (abs(n[i].azimuth), abs(n[i].elevation), i)))
    real_photos.write_grid(path, probes.lr[picks], None if outputs is None else outputs[picks],
                           targets[probes.target_of[picks]])  # fmt: skip


def markdown_table(record: dict[str, Any], markdown: bool = True) -> str:
    """Overall and per-azimuth-bin rows of a record: images, rejects, n and the metrics (the
    photo-region PSNR / SSIM on RGB)."""
    from datagen.core.tables import format_table

    f = real_photos.cell

    def row(label: str, r: dict[str, Any], images: int, rejects: int) -> list[str]:
        return [label, str(images), str(rejects), str(r["n"]), f(r, "psnr", 2), f(r, "ssim"),
                f(r, "psnr_y", 2), f(r, "ssim_y"), f(r, "psnr_photo", 2), f(r, "ssim_photo"),
                f(r, "identity_distance"), f(r, "rank1"), f(r, "rank5"), f(r, "landmark_nrmse"),
                f(r, "landmark_detection_rate", 2)]  # fmt: skip

    head = ["|A| bin", "images", "rejects", "n", "PSNR", "SSIM", "PSNR-Y", "SSIM-Y",
            "PSNR photo", "SSIM photo", "id dist", "rank-1", "rank-5", "lm NRMSE",
            "lm det"]  # fmt: skip
    body = [row("all", record, record["images"], record["rejects"])]
    empty = {"n": 0}
    for b in record["azimuth_bins"]:
        body.append(
            row(b, record["by_azimuth_bin"].get(b, empty), record["images_by_azimuth_bin"][b],
                record["rejects_by_azimuth_bin"][b])
        )  # fmt: skip
    title = (
        f"Yale B ({len(record['subjects'])} subjects, gallery {record['gallery_size']}, margin "
        f"{record['margin']}, photo {record['photo_fraction']:.0%} of the crop), "
        f"method {record['method']}"
    )
    return title + "\n\n" + format_table(head, body, markdown=markdown)
