"""Fitting the Surrey Face Model (shape + expression blendshapes + contours) to 68 landmarks
with eos, and the per-face fit error.

The model files in ``datagen/assets/sfm`` are vendored from the eos repository (shape-only SFM,
free for non-commercial use: see the readme there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import eos
import numpy as np

SFM_DIR = Path(__file__).parent / "assets" / "sfm"


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
    eye_dist = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
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
