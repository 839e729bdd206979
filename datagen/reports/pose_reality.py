"""Reality check of the pose synthesis against real turned views of the same people.

The London set has, per person, a front photo and real left and right 3/4 views. Per person and
side this turns the aligned front face to (1) a fixed 3/4 yaw (``--yaw``, 40 by default, the
pose stage's) and (2) the yaw estimated on the real 3/4 view, then measures:

- yaw: every image (real view, renders) gets the same estimate: dlib HOG detection + 68 dlib
  landmarks + an eos fit, whose yaw is read off;
- identity: dlib's face descriptor (ResNet, 128-D; same person below ~0.6) distance between the
  render and the real 3/4 view, next to front vs real 3/4 (what a model sees without synthesis)
  and real 3/4 views of different people.

Per target yaw of the pose stage (``--yaws``) every front face is also rendered and measured:

- continuity (``datagen.face3d.continuity``): the share of the render's pixels torn or folded
  (its source map jumps by over 2 source pixels with no occlusion's depth step), and the share
  that jumps for any reason (occlusion edges included);
- whether dlib's HOG detector finds a face in the render;
- at the yaws within +-``--nrmse-yaw`` (40): the NRMSE between dlib's 68 landmarks on the
  render and our projected ones, over the outer-eye-corner distance (on the 51 inner points,
  and on all 68: the jaw line is where the two disagree most, since ours are model vertices
  and dlib's follow the silhouette).

``--method face`` measures the earlier renderer (``pose.method``) the same way. ``--tears F.png``
writes the first people's renders at every yaw with their torn pixels marked.

``python -m datagen.reports.pose_reality --london ../shared/data/london-faces --markdown``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datagen.core.images import load_rgb
from datagen.core.tables import format_table
from datagen.face import align
from datagen.face.identity import SAME_PERSON, FaceDescriptor
from datagen.face.landmarks import DlibLandmarker, FaceDetector
from datagen.face3d import continuity, morphable, turning
from datagen.face3d.profiling import HeadShape
from datagen.stages.pairs_pose import DEFAULT_YAWS

SIDES = {"left": "neutral_left_3quarter", "right": "neutral_right_3quarter"}
FRONT = "neutral_front"
CROP = 256


class Measurer:
    """Detection, landmarks, yaw estimate and face descriptor, the same way for every image."""

    def __init__(self) -> None:
        self.detector = FaceDetector("hog", upsample="auto")
        self.landmarker = DlibLandmarker()
        self.descriptor = FaceDescriptor()

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        found = self.detector.detect(rgb)
        return None if not found else self.landmarker(rgb, found[0]).astype(np.float64)

    def yaw(self, rgb: np.ndarray, lm: np.ndarray) -> float | None:
        try:
            f = morphable.fit(lm, (rgb.shape[1], rgb.shape[0]))
        except morphable.FitRejected:
            return None
        return float(f.pose.get_yaw_pitch_roll()[0])


_m: dict[str, Measurer] = {}


def outer_eye_nrmse(found: np.ndarray, ours: np.ndarray, points: slice = slice(None)) -> float:
    """RMS distance between two 68-point sets over ``points``, divided by the distance between
    ``ours``' outer eye corners (36 and 45)."""
    d = np.linalg.norm(np.asarray(found)[points] - np.asarray(ours)[points], axis=1)
    return float(np.sqrt((d**2).mean()) / np.linalg.norm(ours[45] - ours[36]))


def measure_yaws(
    m: Measurer,
    src: turning.PoseSource,
    yaws: Sequence[float],
    method: str,
    nrmse_yaw: float,
    head: HeadShape | None = None,
) -> dict[str, dict[str, Any]]:
    """Per target yaw: tear and jump shares, dlib detection and landmark NRMSE of the render."""
    out = {}
    for r in turning.render_yaws(src, list(yaws), method=method, head=head):
        found = m.landmarks(r.image)
        rec: dict[str, Any] = {
            "tears": continuity.tear_fraction(r.source_map, r.depth),
            "jumps": float(continuity.jump_mask(r.source_map).mean()),
            "detected": found is not None,
        }
        if found is not None and abs(r.yaw) <= nrmse_yaw:
            rec["nrmse_inner"] = outer_eye_nrmse(found, r.landmarks, slice(17, 68))
            rec["nrmse_all"] = outer_eye_nrmse(found, r.landmarks)
        out[f"{r.yaw:+g}"] = rec
    return out


def front_source(
    m: Measurer, root: Path, person: str
) -> tuple[np.ndarray, np.ndarray, turning.PoseSource] | None:
    """A person's front photo, its dlib landmarks and its aligned crop ready to turn; None when
    dlib finds no face in it."""
    photo = load_rgb(root / FRONT / f"{person}_03.jpg", 10**8, 32)
    lm = m.landmarks(photo)
    if lm is None:
        return None
    a = align.estimate_alignment(lm, CROP)
    return photo, lm, turning.prepare(align.warp_crop(photo, a, CROP), align.apply_affine(lm, a))


def measure_person(
    args: tuple[str, str, float, str, tuple[float, ...], float, HeadShape],
) -> dict[str, Any]:
    """Every figure for one person (missing views and failed detections are recorded)."""
    root, person, fixed_yaw, method, yaws, nrmse_yaw, head = args
    root = Path(root)
    m = _m.setdefault("m", Measurer())
    out: dict[str, Any] = {"person": person}
    front = front_source(m, root, person)
    if front is None:
        return {**out, "error": "no face in the front view"}
    photo, lm, src = front
    out["front_descriptor"] = m.descriptor(photo, lm).tolist()
    out["front_yaw"] = float(src.fit.pose.get_yaw_pitch_roll()[0])
    out["by_yaw"] = measure_yaws(m, src, yaws, method, nrmse_yaw, head)
    for side, view in SIDES.items():
        path = next((root / view).glob(f"{person}_*.jpg"), None)
        real = load_rgb(path, 10**8, 32) if path else None
        real_lm = m.landmarks(real) if real is not None else None
        if real_lm is None:
            out[side] = {"error": "no real view" if real is None else "no face in the real view"}
            continue
        real_yaw = m.yaw(real, real_lm)
        rec: dict[str, Any] = {
            "real_yaw": real_yaw,
            "real_descriptor": m.descriptor(real, real_lm).tolist(),
        }
        sign = 1.0 if (real_yaw or 0.0) >= 0 else -1.0
        for name, want in (("fixed", sign * fixed_yaw), ("matched", real_yaw)):
            if want is None:
                continue
            r = turning.render_yaw(src, want, method=method, head=head)
            got = m.landmarks(r.image)
            rec[name] = {
                "requested": want,
                "estimated": m.yaw(r.image, got) if got is not None else None,
                # when dlib finds no face in the render, its own projected landmarks stand in
                "descriptor": m.descriptor(
                    r.image, got if got is not None else r.landmarks
                ).tolist(),
                "detected": got is not None,
            }
        out[side] = rec
    return out


def write_tears(
    root: Path,
    who: Sequence[str],
    yaws: Sequence[float],
    method: str,
    out: Path,
    head: HeadShape | None = None,
) -> None:
    """Per person a row: the aligned front face, then its render at each yaw with the torn or
    folded pixels painted magenta (``continuity.tear_mask``) and the occlusion edges cyan."""
    from PIL import Image

    m = _m.setdefault("m", Measurer())
    rows = []
    for person in who:
        front = front_source(m, root, person)
        if front is None:
            continue
        src = front[2]
        views = [src.image]
        for r in turning.render_yaws(src, list(yaws), method=method, head=head):
            img = continuity.mark(r.image, continuity.jump_mask(r.source_map), (0, 255, 255))
            views.append(continuity.mark(img, continuity.tear_mask(r.source_map, r.depth)))
        rows.append(np.hstack(views))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.vstack(rows)).save(out)


def people(root: Path) -> list[str]:
    return sorted(p.name.split("_")[0] for p in (root / FRONT).glob("*_03.jpg"))


def dist(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def summarise(results: list[dict[str, Any]], fixed_yaw: float) -> dict[str, Any]:
    """Yaw and descriptor-distance statistics over people, per side."""
    s: dict[str, Any] = {"people": len(results)}
    for side in SIDES:
        recs = [(r["person"], r[side]) for r in results if "error" not in r.get(side, {"error": 1})]
        real_yaw = [v["real_yaw"] for _, v in recs if v["real_yaw"] is not None]
        fixed_est = [
            v["fixed"]["estimated"]
            for _, v in recs
            if v.get("fixed", {}).get("estimated") is not None
        ]
        matched_err = [
            abs(v["matched"]["estimated"] - v["real_yaw"])
            for _, v in recs
            if v.get("matched", {}).get("estimated") is not None
        ]
        fronts = {r["person"]: r["front_descriptor"] for r in results if "front_descriptor" in r}
        real_d = {p: v["real_descriptor"] for p, v in recs}
        render_d = {p: v["matched"]["descriptor"] for p, v in recs if "matched" in v}
        ps = sorted(real_d)
        d_render = [dist(render_d[p], real_d[p]) for p in ps if p in render_d]
        d_front = [dist(fronts[p], real_d[p]) for p in ps if p in fronts]
        d_other = [dist(real_d[p], real_d[q]) for i, p in enumerate(ps) for q in ps[i + 1 :]]
        d_render_other = [
            dist(render_d[p], real_d[q]) for p in ps for q in ps if q != p and p in render_d
        ]
        s[side] = {
            "views": len(recs),
            "real_yaw": stats(real_yaw),
            "fixed_requested": fixed_yaw * (1 if np.median(real_yaw or [1]) >= 0 else -1),
            "fixed_estimated": stats(fixed_est),
            "matched_abs_error": stats(matched_err),
            "renders_detected": sum(v.get("matched", {}).get("detected", False) for _, v in recs),
            "d_render_real": stats(d_render, SAME_PERSON),
            "d_front_real": stats(d_front, SAME_PERSON),
            "d_real_other": stats(d_other, SAME_PERSON),
            "d_render_other": stats(d_render_other, SAME_PERSON),
        }
    return s


def summarise_yaws(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target yaw over people: tear and jump shares, detection rate, landmark NRMSE."""
    out: dict[str, dict[str, Any]] = {}
    recs = [r["by_yaw"] for r in results if "by_yaw" in r]
    for yaw in recs[0] if recs else []:
        v = [r[yaw] for r in recs]
        out[yaw] = {
            "renders": len(v),
            "tears": stats([x["tears"] for x in v]),
            "tears_max": max(x["tears"] for x in v),
            "jumps": stats([x["jumps"] for x in v]),
            "detection_rate": float(np.mean([x["detected"] for x in v])),
            "nrmse_inner": stats([x["nrmse_inner"] for x in v if "nrmse_inner" in x]),
            "nrmse_all": stats([x["nrmse_all"] for x in v if "nrmse_all" in x]),
        }
    return out


def stats(v: list[float], threshold: float | None = None) -> dict[str, float]:
    if not v:
        return {"n": 0}
    a = np.asarray(v, float)
    out = {
        "n": len(a),
        "mean": float(a.mean()),
        "sd": float(a.std()),
        "median": float(np.median(a)),
    }
    if threshold is not None:
        out["below_threshold"] = float((a < threshold).mean())
    return out


def tables(s: dict[str, Any], markdown: bool) -> str:
    def ms(d: dict[str, float]) -> str:
        return f"{d['mean']:.1f} ± {d['sd']:.1f}" if d.get("n") else "-"

    def pct(d: dict[str, float]) -> str:
        return f"{100 * d['mean']:.3f}%" if d.get("n") else "-"

    def nr(d: dict[str, float]) -> str:
        return f"{d['mean']:.3f} ± {d['sd']:.3f}" if d.get("n") else "-"

    yaw_table = ""
    if s.get("by_yaw"):
        rows = [
            [
                yaw,
                str(v["renders"]),
                pct(v["tears"]),
                f"{100 * v['tears_max']:.3f}%",
                pct(v["jumps"]),
                f"{100 * v['detection_rate']:.1f}%",
                nr(v["nrmse_inner"]),
                nr(v["nrmse_all"]),
            ]
            for yaw, v in s["by_yaw"].items()
        ]
        yaw_table = (
            format_table(
                [
                    "yaw",
                    "renders",
                    "torn or folded (mean)",
                    "(worst)",
                    "any jump (occlusion edges too)",
                    "dlib finds a face",
                    "landmark NRMSE, 51 inner",
                    "all 68",
                ],
                rows,
                markdown,
            )
            + "\n\n"
        )

    yaw_rows = []
    for side in SIDES:
        v = s[side]
        yaw_rows.append(
            [
                side,
                str(v["views"]),
                ms(v["real_yaw"]),
                f"{v['fixed_requested']:+.0f}",
                ms(v["fixed_estimated"]),
                ms(v["matched_abs_error"]),
                f"{v['renders_detected']}/{v['views']}",
            ]
        )
    dist_rows = []
    for side in SIDES:
        v = s[side]
        for key, label in (
            ("d_render_real", "our render (matched yaw) vs real 3/4, same person"),
            ("d_front_real", "front photo vs real 3/4, same person"),
            ("d_render_other", "our render vs real 3/4, different people"),
            ("d_real_other", "real 3/4 vs real 3/4, different people"),
        ):
            d = v[key]
            dist_rows.append(
                [
                    f"{side}: {label}",
                    str(d.get("n", 0)),
                    f"{d['mean']:.3f} ± {d['sd']:.3f}" if d.get("n") else "-",
                    f"{100 * d['below_threshold']:.0f}%" if d.get("n") else "-",
                ]
            )
    front = ""
    if s.get("front_yaw", {}).get("n"):
        f = s["front_yaw"]
        front = (
            f"front photos: fitted yaw {f['mean']:+.1f} ± {f['sd']:.1f} degrees, "
            f"largest |yaw| {s['front_abs_yaw_max']:.1f} (method {s.get('method', 'head')})\n\n"
        )
    return (
        front
        + yaw_table
        + format_table(
            [
                "side",
                "people",
                "real 3/4 yaw (est.)",
                "requested",
                "our render (est.)",
                "render at matched yaw: abs. diff.",
                "renders dlib found",
            ],
            yaw_rows,
            markdown,
        )
        + "\n\n"
        + format_table(
            ["dlib descriptor distance", "pairs", "mean ± sd", f"< {SAME_PERSON}"],
            dist_rows,
            markdown,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m datagen.reports.pose_reality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--london", default="../shared/data/london-faces", help="London set root")
    ap.add_argument("--limit", type=int, default=0, help="first N people only (0: all)")
    ap.add_argument("--yaw", type=float, default=40.0, help="fixed 3/4 yaw to request, degrees")
    ap.add_argument(
        "--yaws",
        default=",".join(f"{y:g}" for y in DEFAULT_YAWS),
        help="target yaws measured per render (continuity, detection, NRMSE)",
    )
    ap.add_argument(
        "--nrmse-yaw", type=float, default=40.0, help="landmark NRMSE at |yaw| up to this"
    )
    ap.add_argument("--method", choices=turning.METHODS, default="head", help="pose.method")
    ap.add_argument(
        "--head",
        default="",
        help="pose.head keys for method head, e.g. margin=0.2,slope=0.5 (others: HeadShape's "
        "defaults, the values params.yaml ships)",
    )
    ap.add_argument("--tears", help="write renders with torn pixels marked here (PNG)")
    ap.add_argument("--tears-people", type=int, default=3, help="people in --tears")
    ap.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    ap.add_argument("--json", help="write per-person figures and the summary here")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    root = Path(args.london)
    missing = [d for d in (FRONT, *SIDES.values()) if not (root / d).is_dir()]
    if missing:
        print(
            f"{root}: no {', '.join(missing)} folder(s); this needs the London set with its "
            "3/4 views (see README: Pose pairs)",
            file=sys.stderr,
        )
        return 2
    who = people(root)[: args.limit or None]
    yaws = tuple(float(y) for y in args.yaws.split(","))
    try:
        head = HeadShape.from_params(
            {k: float(v) for k, v in (kv.split("=") for kv in args.head.split(",") if kv)}
        )
    except ValueError as e:
        print(f"--head {args.head!r}: {e} (expected key=value,... of pose.head)", file=sys.stderr)
        return 2
    jobs = [(str(root), p, args.yaw, args.method, yaws, args.nrmse_yaw, head) for p in who]
    from tqdm import tqdm

    from datagen.core.shards import default_workers

    workers = args.workers or default_workers()
    if workers == 1:
        results = [measure_person(j) for j in tqdm(jobs, desc="people")]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            results = list(tqdm(pool.imap(measure_person, jobs), total=len(jobs), desc="people"))
    s = summarise(results, args.yaw)
    s["by_yaw"] = summarise_yaws(results)
    s["method"] = args.method
    front_yaws = [r["front_yaw"] for r in results if "front_yaw" in r]
    s["front_yaw"] = stats(front_yaws)
    s["front_abs_yaw_max"] = float(np.abs(front_yaws).max()) if front_yaws else None
    print(tables(s, args.markdown))
    if args.tears:
        write_tears(root, who[: args.tears_people], yaws, args.method, Path(args.tears), head)
        print(f"wrote {args.tears}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "people": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
