"""Fitting the Surrey Face Model (shape + expression blendshapes + contours) to 68 landmarks
with eos, and the per-face fit error.

The model files in ``datagen/assets/surrey-face-model`` are vendored from the eos repository (shape-only SFM,
free for non-commercial use: see the readme there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import eos
import numpy as np

from datagen.core.shards import read_index

SFM_DIR = Path(__file__).resolve().parents[1] / "assets" / "surrey-face-model"


class FitRejected(Exception):
    """A face the 3DMM cannot be fitted to; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SurreyModel:
    model: eos.morphablemodel.MorphableModel
    mapper: eos.core.LandmarkMapper
    edges: eos.morphablemodel.EdgeTopology
    contour_landmarks: eos.fitting.ContourLandmarks
    model_contour: eos.fitting.ModelContour
    ibug_to_vertex: dict[int, int]  # 0-based iBUG index -> SFM vertex, inner points only


@lru_cache(maxsize=1)
def load_model(root: str = str(SFM_DIR)) -> SurreyModel:
    """The SFM with its 6 expression blendshapes and the iBUG mappings (loaded once per process)."""
    r = Path(root)
    shape = eos.morphablemodel.load_model(str(r / "sfm_shape_3448.bin"))
    blendshapes = eos.morphablemodel.load_blendshapes(str(r / "expression_blendshapes_3448.bin"))
    model = eos.morphablemodel.MorphableModel(
        shape.get_shape_model(),
        blendshapes,
        color_model=eos.morphablemodel.PcaModel(),
        vertex_definitions=None,
        texture_coordinates=shape.get_texture_coordinates(),
    )
    mapper = eos.core.LandmarkMapper(str(r / "ibug_to_sfm.txt"))
    ibug_to_vertex = {}
    for i in range(68):
        v = mapper.convert(str(i + 1))
        if v is not None:
            ibug_to_vertex[i] = int(v)
    return SurreyModel(
        model=model,
        mapper=mapper,
        edges=eos.morphablemodel.load_edge_topology(str(r / "sfm_3448_edge_topology.json")),
        contour_landmarks=eos.fitting.ContourLandmarks.load(str(r / "ibug_to_sfm.txt")),
        model_contour=eos.fitting.ModelContour.load(str(r / "sfm_model_contours.json")),
        ibug_to_vertex=ibug_to_vertex,
    )


@dataclass
class Fit:
    """One face's fit: the mesh, the camera, the coefficients and how well it matches."""

    mesh: eos.core.Mesh
    pose: eos.fitting.RenderingParameters
    shape_coefficients: list[float]
    expression_coefficients: list[float]
    image_size: tuple[int, int]  # width, height of the image the landmarks are in
    landmarks: np.ndarray  # the 68 landmarks it was fitted to
    error_px: float  # mean distance, projected model landmarks to the given ones (inner points)

    def camera(self) -> np.ndarray:
        """3x4 affine camera: homogeneous model point -> homogeneous image pixel (x, y, ., 1)."""
        w, h = self.image_size
        return np.asarray(eos.fitting.get_3x4_affine_camera_matrix(self.pose, w, h))

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """Image pixels of model-space points (N x 3)."""
        v = np.c_[np.asarray(vertices, np.float64), np.ones(len(vertices))]
        return (v @ self.camera().T)[:, :2]


def eye_distance(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres of 68 iBUG landmarks."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))


def check_landmarks(landmarks: np.ndarray) -> None:
    """Refuse landmark sets no fit can make sense of, before eos sees them."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise FitRejected("degenerate landmarks", f"need 68 finite points, got shape {lm.shape}")
    spread = lm.std(0)
    if spread.min() < 2.0:
        raise FitRejected(
            "degenerate landmarks", f"points spread only {spread.min():.2f} px along one axis"
        )
    eye_dist = eye_distance(lm)
    if eye_dist < 4.0:
        raise FitRejected("degenerate landmarks", f"eye centres {eye_dist:.2f} px apart")


def fit(landmarks: np.ndarray, image_size: tuple[int, int], iterations: int = 5) -> Fit:
    """Fit shape, expression and pose to 68 iBUG landmarks (pixels of an image of ``image_size``)."""
    check_landmarks(landmarks)
    m = load_model()
    w, h = image_size
    points = [
        eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(landmarks)
    ]
    try:
        mesh, pose, shape_coeffs, expr_coeffs = eos.fitting.fit_shape_and_pose(
            m.model,
            points,
            m.mapper,
            w,
            h,
            m.edges,
            m.contour_landmarks,
            m.model_contour,
            num_iterations=iterations,
        )
    except Exception as e:  # eos raises on numerically hopeless input
        raise FitRejected("fit failed", f"{type(e).__name__}: {e}") from e
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    if not np.isfinite(verts).all():
        raise FitRejected("fit failed", "non-finite mesh")
    result = Fit(
        mesh,
        pose,
        list(shape_coeffs),
        list(expr_coeffs),
        (w, h),
        np.asarray(landmarks, np.float64),
        0.0,
    )
    idx = sorted(m.ibug_to_vertex)
    projected = result.project(verts[[m.ibug_to_vertex[i] for i in idx]])
    result.error_px = float(np.linalg.norm(projected - np.asarray(landmarks)[idx], axis=1).mean())
    return result


# --------------------------------------------------------------------------- cached fits

# Eight corners of a 200 mm cube: non-coplanar, so a scaled orthographic camera is determined
# exactly by where it sends them.
_CUBE = np.array([[x, y, z] for x in (-100, 100) for y in (-100, 100) for z in (-100, 100)], float)


def rendering_parameters(
    camera: np.ndarray, image_size: tuple[int, int]
) -> eos.fitting.RenderingParameters:
    """eos camera from the 3x4 affine camera matrix ``Fit.camera`` gives.

    eos exposes no constructor for its scaled orthographic parameters, so they are recovered (to
    float32 precision) by its own linear estimator from exact correspondences.
    """
    w, h = image_size
    image = (np.c_[_CUBE, np.ones(len(_CUBE))] @ np.asarray(camera, np.float64).T)[:, :2]
    sop = eos.fitting.estimate_orthographic_projection_linear(
        [p.astype(np.float32).reshape(2, 1) for p in image],
        [np.r_[q, 1.0].astype(np.float32).reshape(4, 1) for q in _CUBE],
        True,
        h,
    )
    return eos.fitting.RenderingParameters(sop, w, h)


def fit_record(f: Fit) -> dict:
    """What a fit needs to be rebuilt (``fit_from_record``), as plain values for a table row."""
    w, h = f.image_size
    yaw, pitch, roll = (float(a) for a in f.pose.get_yaw_pitch_roll())
    return {
        "shape_coefficients": np.asarray(f.shape_coefficients, np.float32),
        "expression_coefficients": np.asarray(f.expression_coefficients, np.float32),
        "camera": f.camera()[:3],
        "image_width": int(w),
        "image_height": int(h),
        "fit_landmarks": f.landmarks.astype(np.float32),
        "fit_error_px": f.error_px,
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
    }


def fit_from_record(r: dict) -> Fit:
    """The ``Fit`` a ``fit_record`` row describes (mesh rebuilt from the model's coefficients)."""
    m = load_model()
    shape = [float(c) for c in r["shape_coefficients"]]
    expression = [float(c) for c in r["expression_coefficients"]]
    size = (int(r["image_width"]), int(r["image_height"]))
    return Fit(
        mesh=m.model.draw_sample(shape, expression, []),
        pose=rendering_parameters(np.asarray(r["camera"]), size),
        shape_coefficients=shape,
        expression_coefficients=expression,
        image_size=size,
        landmarks=np.asarray(r["fit_landmarks"], np.float64),
        error_px=float(r["fit_error_px"]),
    )


def load_fits(fits_dir: Path) -> dict[str, dict[str, Any]]:
    """Accepted fits by face_id, as records for ``fit_from_record``."""
    return {r["face_id"]: r for r in read_index(Path(fits_dir)).iter_rows(named=True)}
