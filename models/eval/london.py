"""Real turned faces (issue 14, item 5): the London set's 3/4 views, beyond the synthetic test.

For each person of the test split (``--faces``: the people the pose networks never saw), the
left and right 3/4 views, neutral (``NNN_02``, ``NNN_04``) and smiling (``NNN_07``,
``NNN_09``), go through the project's ``faces`` ingest (dlib detection and 68 landmarks; a
photo without a usable face is a recorded reject), are cropped and aligned where the pose
pairs put a face turned that far, degraded to 16 x 16 by the pose pairs' degrade step, and
hallucinated by a method. The output is scored against the same person's frontal photo of the
same expression (``NNN_03`` neutral, ``NNN_08`` smiling), through the same ingest and aligned
to the frontal template as every pose target is, with the synthetic protocol's metric code.

The crop (``match_yaw``): a pose pair's LR input is the frontal face re-rendered at a yaw, in
the frontal face's own crop, so its inner landmarks sit where the 3D turn moved them. Per yaw
of the pairs (``--pairs``), the mean of the train pairs' ``landmarks_nonfrontal`` is that
yaw's template; a real view is aligned (least-squares similarity on the 51 inner points: brows,
nose, eyes, mouth; the jaw line of a turned face is its silhouette, not the model's contour) to
the template it fits best, which also says which way and how far it is turned (``by_yaw``).

Identity: descriptor distance to the target, and rank-k identification among the targets of
the same expression of every scored person (one face per person), reported when the gallery
holds more than k people. The real 3/4 HR view's own distance to the target is recorded as a
reference (``hr_view_identity_distance``): what a perfect super-resolver that does not
frontalise would score. Breakdowns by side, expression, view and matched yaw.
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
from skimage.transform import SimilarityTransform
from tqdm import tqdm

from datagen.core.images import load_rgb
from datagen.core.params import group
from datagen.core.seeding import sample_seed
from datagen.core.shards import ShardDataset, read_index
from datagen.face import align
from datagen.face.degrade import DegradeParams, degrade
from datagen.stages.pairs_pose import PoseParams
from models.eval import metrics, real_photos
from models.eval.protocol import KEYS, needs_target, run_method
from models.train.device import pick_device

TASK = "pose"
# view number -> (side, expression): the London set's 3/4 views
VIEWS = {"02": ("left", "neutral"), "04": ("right", "neutral"),
         "07": ("left", "smiling"), "09": ("right", "smiling")}  # fmt: skip
FRONTS = {"neutral": "03", "smiling": "08"}  # expression -> the frontal photo's view number
# Degrade draws from the pose pairs' stage id with keys of their own ("london/<source>"): no
# draw repeats a training pair's, and a rerun draws the same.
SEED_STAGE, SEED_PREFIX = "pairs_pose", "london/"
_NAME = re.compile(r"^(?P<person>\d+)_(?P<view>\d{2})\.(?:jpe?g|png)$", re.IGNORECASE)


def parse_name(name: str) -> tuple[str, str] | None:
    """``012_04.jpg`` -> ("012", "04"): person and view number; None for other files."""
    m = _NAME.match(name)
    return None if m is None else (m["person"], m["view"])


def test_people(faces_dir: str | Path) -> list[str]:
    """The identities of the test split of a faces dataset, sorted."""
    faces_dir = Path(faces_dir)
    if not (faces_dir / "index.parquet").is_file():
        raise FileNotFoundError(
            f"{faces_dir} is not a faces dataset: the people to evaluate are its test split "
            "(run `dvc repro faces`, or pass --faces or --people)"
        )
    index = read_index(faces_dir).filter(pl.col("split") == "test")
    return sorted(set(index["identity"].to_list()))


def list_people(folder: str | Path, people: list[str]) -> dict[str, list[Path]]:
    """Person -> their 3/4 views and frontal photos (``VIEWS``, ``FRONTS``) found anywhere
    under ``folder`` (the London set: ``<view folder>/<person>_<view>.jpg``), sorted by name;
    only the ``people`` given, each of whom must have at least one file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"London faces folder {folder} does not exist")
    if not people:
        raise ValueError("no people to evaluate")
    wanted = set(VIEWS) | set(FRONTS.values())
    found: dict[str, dict[str, Path]] = {p: {} for p in people}
    for f in sorted(folder.rglob("*")):
        parsed = parse_name(f.name)
        if parsed is None or parsed[0] not in found or parsed[1] not in wanted:
            continue
        if f.name in found[parsed[0]]:
            raise ValueError(f"{f.name} is in {folder} twice: {found[parsed[0]][f.name]}, {f}")
        found[parsed[0]][f.name] = f
    missing = [p for p, fs in found.items() if not fs]
    if missing:
        raise FileNotFoundError(
            f"no London photos of {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
            f"in {folder} (expected <person>_02.jpg, _03, _04, _07, _08, _09 in any subfolder)"
        )
    return {p: [fs[n] for n in sorted(fs)] for p, fs in found.items()}


def yaw_templates(pairs_dir: str | Path) -> tuple[dict[float, np.ndarray], int]:
    """Yaw -> the mean ``landmarks_nonfrontal`` (68 x 2, HR crop pixels) of the train pairs of a
    pose pair set, and the pairs' HR size."""
    pairs_dir = Path(pairs_dir)
    if not (pairs_dir / "index.parquet").is_file():
        raise FileNotFoundError(
            f"{pairs_dir} is not a pair set: the crops follow the pose pairs' turned faces "
            "(run `dvc repro pairs_pose`, or pass --pairs)"
        )
    index = read_index(pairs_dir)
    if "landmarks_nonfrontal" not in index.columns:
        raise ValueError(f"{pairs_dir} is not a pose pair set (no landmarks_nonfrontal column)")
    train = index.filter(pl.col("split") == "train")
    if len(train) == 0:
        raise ValueError(f"{pairs_dir} has no train pairs to take the yaw templates from")
    out = {}
    for yaw in sorted(set(train["yaw"].to_list())):
        lm = train.filter(pl.col("yaw") == yaw)["landmarks_nonfrontal"].to_list()
        out[float(yaw)] = np.asarray(lm, np.float64).reshape(-1, 68, 2).mean(0)
    return out, int(ShardDataset(pairs_dir, images=["hr"])[0]["hr"].shape[-1])


def match_yaw(
    landmarks: np.ndarray, templates: dict[float, np.ndarray]
) -> tuple[float, np.ndarray, float]:
    """(yaw, 2x3 similarity source -> crop pixels, residual) of the template the photo's 68
    landmarks fit best on ``align.ALIGN_POINTS`` (least squares); the residual is the RMS
    distance over the template's eye-centre distance (``align.alignment_error``'s measure)."""
    src = np.asarray(landmarks, np.float64)[align.ALIGN_POINTS]
    best: tuple[float, np.ndarray, float] | None = None
    for yaw, tpl in templates.items():
        dst = tpl[align.ALIGN_POINTS]
        tf = SimilarityTransform.from_estimate(src, dst)
        if not tf:
            continue
        m = tf.params[:2].copy()
        eyes = np.linalg.norm(tpl[42:48].mean(0) - tpl[36:42].mean(0))
        res = float(np.sqrt(((align.apply_affine(src, m) - dst) ** 2).sum(1).mean()) / eyes)
        if best is None or res < best[2]:
            best = (yaw, m, res)
    if best is None:
        raise ValueError("degenerate landmarks: no similarity transform fits them")
    return best


@dataclass
class Probes:
    """The scored views: LR inputs (uint8 N x 16 x 16 x 3), the aligned HR views (N x H x W x 3),
    and per view its person, side, expression, matched yaw and residual, source, and the index
    of its target."""

    lr: np.ndarray
    hr_view: np.ndarray
    people: list[str]
    sides: list[str]
    expressions: list[str]
    yaws: list[float]
    residuals: list[float]
    sources: list[str]
    target_of: np.ndarray


def split_rows(
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """The ingested 3/4 views, and (person, expression) -> that person's ingested frontal
    photo of the expression."""
    views, fronts = [], {}
    front_of = {v: e for e, v in FRONTS.items()}
    for r in rows:
        person, view = parse_name(Path(r["source"]).name)
        if view in VIEWS:
            views.append(r)
        else:
            fronts[(person, front_of[view])] = r
    return views, fronts


def make_probes(
    views: list[dict[str, Any]],
    photos: dict[str, Path],
    target_keys: list[tuple[str, str]],
    templates: dict[float, np.ndarray],
    size: int,
    params: dict[str, Any],
    progress: bool = True,
) -> Probes:
    """Crop each view whose target is in ``target_keys`` at its matched yaw template (from its
    photo, ``photos``: source -> file) and degrade it as the pose pairs are (``degrade``
    params, ``pose.transform``, a per-view seed)."""
    d = DegradeParams.from_params(group(params, "degrade"))
    transform = PoseParams.from_params(group(params, TASK)).transform
    faces = group(params, "faces")
    border, max_pixels = faces.get("border", "reflect"), int(faces.get("max_pixels", 10**8))
    seed = int(params.get("seed", 0))
    index = {k: i for i, k in enumerate(target_keys)}
    cols: dict[str, list] = {k: [] for k in Probes.__dataclass_fields__}
    for r in tqdm(views, desc="london: crop", unit="img", leave=False, disable=not progress):
        person, view = parse_name(Path(r["source"]).name)
        side, expression = VIEWS[view]
        if (person, expression) not in index:
            continue
        lm = np.asarray(r["landmarks_source"], np.float64)
        yaw, matrix, residual = match_yaw(lm, templates)
        photo = load_rgb(photos[r["source"]], max_pixels, 1)
        hr = align.warp_crop(photo, matrix, size, border)
        rng = np.random.default_rng(sample_seed(seed, SEED_STAGE, SEED_PREFIX + r["source"]))
        small, _ = degrade(hr, align.apply_affine(lm, matrix), rng, d, transform)
        for k, v in (("lr", small), ("hr_view", hr), ("people", person), ("sides", side),
                     ("expressions", expression), ("yaws", yaw), ("residuals", residual),
                     ("sources", r["source"]), ("target_of", index[(person, expression)])):  # fmt: skip
            cols[k].append(v)
    if not cols["lr"]:
        raise RuntimeError("no 3/4 view has its frontal photo: nothing to score")
    return Probes(
        **{k: v for k, v in cols.items() if k not in ("lr", "hr_view", "target_of")},
        lr=np.stack(cols["lr"]),
        hr_view=np.stack(cols["hr_view"]),
        target_of=np.array(cols["target_of"], np.int64),
    )


def score(
    outputs: np.ndarray,
    probes: Probes,
    targets: np.ndarray,
    target_landmarks: np.ndarray,
    target_keys: list[tuple[str, str]],
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-view metrics of the outputs (uint8 N x H x W x 3) against their targets (one per
    person and expression, with its 68 landmarks), with the synthetic protocol's functions;
    rank-k among the targets of the view's expression. Also each real HR view's own identity
    distance to its target (N), the no-frontalisation reference."""
    from models.archs.identity import identity_network
    from models.losses.identity import IdentityLoss

    loss = IdentityLoss(identity_network())
    t = probes.target_of
    result = metrics.psnr_ssim(outputs, targets[t])
    if progress:
        print(f"london: dlib landmarks on {len(outputs)} outputs", flush=True)
    result.update(metrics.landmark_metrics(outputs, target_landmarks[t]))
    out_desc = metrics.descriptors(outputs, loss)
    gallery = metrics.descriptors(targets, loss)
    view_desc = metrics.descriptors(probes.hr_view, loss)
    for expression in sorted(set(probes.expressions)):
        rows = np.flatnonzero(np.array(probes.expressions) == expression)
        g = [i for i, k in enumerate(target_keys) if k[1] == expression]
        ks = tuple(k for k in (1, 5) if k < len(g))  # rank-k among <= k people is always 1
        part = metrics.identity_scores(
            out_desc[rows], gallery[t[rows]], [probes.people[i] for i in rows], gallery[g],
            [target_keys[i][0] for i in g], ks=ks,
        )  # fmt: skip
        for k, v in part.items():
            result.setdefault(k, np.full(len(outputs), np.nan))[rows] = v
    return result, np.linalg.norm(view_desc - gallery[t], axis=1)


def evaluate_london(
    folder: str | Path,
    method: str | None = "bicubic",
    checkpoint: str | Path | None = None,
    *,
    params: dict[str, Any],
    people: list[str] | None = None,
    faces_dir: str | Path = "data/faces",
    pairs_dir: str | Path = "data/pairs/pose",
    work_dir: str | Path | None = None,
    workers: int = 0,
    device: str = "auto",
    batch: int = 64,
    grid: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``method`` (None: the checkpoint's network; bicubic without one) on the 3/4 views
    in ``folder`` of ``people`` (None: the test split of ``faces_dir``). ``params``: the
    project's params (``faces``, ``shards``, ``degrade``, ``pose``, ``seed``); ``pairs_dir``:
    the pose pairs whose turned faces set the crops; ``work_dir`` keeps the ingested faces (None:
    a temporary folder); ``grid``: a sample grid PNG (LR | bicubic | method | target | real HR
    view). A network that reads its target (V+GT) gets the frontal photo. Returns the JSON
    record (see the README section)."""
    method, model, info = real_photos.load_method(method, checkpoint, TASK)
    people = test_people(faces_dir) if people is None else sorted(set(people))
    templates, size = yaw_templates(pairs_dir)
    files = list_people(folder, people)
    photos = {f"{p}/{f.name}": f for p, fs in files.items() for f in fs}
    with tempfile.TemporaryDirectory(prefix="london-") as tmp:
        rows, rejects = real_photos.ingest(
            files, Path(work_dir or tmp), params, 0.0, workers, progress
        )
    if rows and rows[0]["hr"].shape[-1] != size:
        raise ValueError(
            f"faces.hr_size {rows[0]['hr'].shape[-1]} differs from the pose pairs' {size}"
        )
    views, fronts = split_rows(rows)
    target_keys = sorted(fronts)
    probes = make_probes(views, photos, target_keys, templates, size, params, progress)
    targets = np.stack([fronts[k]["hr"].permute(1, 2, 0).numpy() for k in target_keys])
    target_lm = np.stack([np.asarray(fronts[k]["landmarks"], np.float64) for k in target_keys])
    lr = metrics.to_unit(probes.lr)
    oracle = None
    if model is not None and needs_target(model):  # V+GT: its prior from the frontal photo
        oracle = metrics.to_unit(targets[probes.target_of])
    outputs, _ = run_method(model, lr, size, pick_device(device), batch, oracle)
    per_image, hr_view_dist = score(outputs, probes, targets, target_lm, target_keys, progress)
    per_image["hr_view_identity_distance"] = hr_view_dist
    groups = {
        "side": probes.sides,
        "expression": probes.expressions,
        "view": [f"{s}-{e}" for s, e in zip(probes.sides, probes.expressions, strict=True)],
        "yaw": probes.yaws,
    }
    summary = metrics.summarise(per_image, groups)
    for part in [summary["overall"], *(p for g in groups for p in summary[f"by_{g}"].values())]:
        for k in KEYS:
            part.setdefault(k, None)  # rank-k left out for a small gallery: explicit null
    reasons = Counter(r["reason"] for r in rejects)
    scored = sorted(set(probes.people))
    d = DegradeParams.from_params(group(params, "degrade"))
    record: dict[str, Any] = {
        "method": method,
        "task": TASK,
        "dataset": "london-faces-3quarter",
        "folder": str(folder),
        "people": people,
        "people_scored": scored,
        "images": len(photos),
        "views": sum(parse_name(Path(s).name)[1] in VIEWS for s in photos),
        "rejects": len(rejects),
        "rejects_by_reason": dict(sorted(reasons.items())),
        "faces": len(rows),
        # accepted views whose frontal photo was missing or rejected: nothing to score against
        "skipped_without_target": len(views) - len(probes.sources),
        **summary.pop("overall"),
        "gallery_size": {e: sum(k[1] == e for k in target_keys) for e in FRONTS},
        "yaw_templates": sorted(templates),
        "yaw_residual": float(np.mean(probes.residuals)),
        "seed": int(params.get("seed", 0)),
        "degrade": {**d.outputs(), "transform": PoseParams.from_params(group(params, TASK)).transform},
        **info,
        **summary,
        "rejected": sorted(
            ({"source": r["source"], "reason": r["reason"], "detail": r["detail"]} for r in rejects),
            key=lambda r: r["source"],
        ),
    }  # fmt: skip
    if grid is not None:
        write_grid(grid, probes, outputs if model is not None else None, targets)
    return record


def write_grid(
    path: str | Path, probes: Probes, outputs: np.ndarray | None, targets: np.ndarray
) -> None:
    """LR (nearest) | bicubic | method (omitted for bicubic) | target | real HR view: the
    first person's scored views, then the next person's, up to 8 rows."""
    picks = list(range(min(8, len(probes.lr))))
    real_photos.write_grid(
        path, probes.lr[picks], None if outputs is None else outputs[picks],
        targets[probes.target_of[picks]], probes.hr_view[picks],
    )  # fmt: skip


def markdown_table(record: dict[str, Any], markdown: bool = True) -> str:
    """Overall, per-side, per-expression and per-matched-yaw rows of a record."""
    from datagen.core.tables import format_table

    f = real_photos.cell

    def row(label: str, r: dict[str, Any]) -> list[str]:
        return [label, str(r["n"]), f(r, "psnr", 2), f(r, "ssim"), f(r, "identity_distance"),
                f(r, "rank1"), f(r, "rank5"), f(r, "landmark_nrmse"),
                f(r, "landmark_detection_rate", 2), f(r, "hr_view_identity_distance")]  # fmt: skip

    head = ["views", "n", "PSNR", "SSIM", "id dist", "rank-1", "rank-5", "lm NRMSE", "lm det",
            "real 3/4 id dist"]  # fmt: skip
    body = [row("all", record)]
    for name in ("side", "expression", "yaw"):
        for label, r in record[f"by_{name}"].items():
            body.append(row(f"{name} {label}", r))
    title = (
        f"London 3/4 views ({len(record['people_scored'])} people, {record['views']} views, "
        f"{record['rejects']} rejects), method {record['method']}"
    )
    return title + "\n\n" + format_table(head, body, markdown=markdown)
