"""Reality check of the pose synthesis against real turned views of the same people.

The London set has, per person, a front photo and real left and right 3/4 views. Per person and
side this turns the aligned front face to (1) a fixed 3/4 yaw (``--yaw``, 40 by default, the
pose stage's) and (2) the yaw estimated on the real 3/4 view, then measures:

- yaw: every image (real view, renders) gets the same estimate: dlib HOG detection + 68 dlib
  landmarks + an eos fit, whose yaw is read off;
- identity: dlib's face descriptor (ResNet, 128-D; same person below ~0.6) distance between the
  render and the real 3/4 view, next to front vs real 3/4 (what a model sees without synthesis)
  and real 3/4 views of different people.

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
from datagen.face3d import morphable, turning

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


def measure_person(args: tuple[str, str, float]) -> dict[str, Any]:
    """Every figure for one person (missing views and failed detections are recorded)."""
    root, person, fixed_yaw = Path(args[0]), args[1], args[2]
    m = _m.setdefault("m", Measurer())
    out: dict[str, Any] = {"person": person}
    front = load_rgb(root / FRONT / f"{person}_03.jpg", 10**8, 32)
    lm = m.landmarks(front)
    if lm is None:
        return {**out, "error": "no face in the front view"}
    out["front_descriptor"] = m.descriptor(front, lm).tolist()
    a = align.estimate_alignment(lm, CROP)
    src = turning.prepare(align.warp_crop(front, a, CROP), align.apply_affine(lm, a))
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
            r = turning.render_yaw(src, want)
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
    return (
        format_table(
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
    jobs = [(str(root), p, args.yaw) for p in who]
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
    print(tables(s, args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "people": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
