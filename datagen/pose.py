"""Re-rendering an aligned face at a new yaw from its Surrey Face Model fit (VividGAN's data).

A face is fitted once (``datagen.sfm.fit``), its texture taken with eos, and every target yaw
re-renders the textured mesh turned about the head's vertical axis under the same camera. What
lies outside the mesh (hair, ears, neck, background) follows the mesh with a smooth 2D warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import eos
import numpy as np

from datagen import render, sfm

# The SFM's origin is near the nose tip and the face spans z -103..3 mm; a head turns about an
# axis well behind the face, roughly above the neck.
PIVOT_DEPTH_MM = 80.0


@dataclass
class PoseSource:
    """One face ready to be re-rendered: image, fit, texture with its visibility."""

    image: np.ndarray  # H x W x 3 uint8 (the large aligned crop)
    fit: sfm.Fit
    texture: np.ndarray  # T x T x 3 uint8
    landmark_vertices: np.ndarray  # 68 vertex ids whose projections are the landmarks


def mirror_fill(texture_rgba: np.ndarray) -> np.ndarray:
    """Texels eos could not see (alpha 0) taken from the other side of the face.

    The SFM texture map is left-right symmetric about its vertical centre line; what is still
    missing after mirroring is inpainted from its surroundings."""
    rgb = np.ascontiguousarray(texture_rgba[..., :3])
    seen = texture_rgba[..., 3] > 0
    mirrored, mseen = rgb[:, ::-1], seen[:, ::-1]
    out = rgb.copy()
    take = ~seen & mseen
    out[take] = mirrored[take]
    holes = (~seen & ~mseen).astype(np.uint8)
    if holes.any():
        out = cv2.inpaint(out, holes, 3, cv2.INPAINT_TELEA)
    return out


def prepare(image: np.ndarray, landmarks: np.ndarray, texture_size: int = 512) -> PoseSource:
    """Fit the SFM to ``landmarks`` (pixels of ``image``) and extract its texture."""
    h, w = image.shape[:2]
    fit = sfm.fit(landmarks, (w, h))
    rgba = np.dstack([image, np.full((h, w), 255, np.uint8)])
    texture = np.asarray(eos.render.extract_texture(fit.mesh, fit.pose, rgba, texture_size))
    return PoseSource(image, fit, mirror_fill(texture), landmark_vertices(fit))


def yaw_rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def turned_vertices(fit: sfm.Fit, yaw: float) -> np.ndarray:
    """Mesh vertices turned by ``yaw`` degrees about the head's vertical (model y) axis."""
    pivot = np.array([0.0, 0.0, -PIVOT_DEPTH_MM])
    v = np.asarray(fit.mesh.vertices, np.float64)
    return (v - pivot) @ yaw_rotation(yaw).T + pivot


def depth(fit: sfm.Fit, vertices: np.ndarray) -> np.ndarray:
    """Camera-space z (larger is nearer the camera)."""
    mv = np.asarray(fit.pose.get_modelview())
    return (np.c_[vertices, np.ones(len(vertices))] @ mv.T)[:, 2]


def surroundings_flow(
    xy_from: np.ndarray, xy_to: np.ndarray, face: np.ndarray, sigma: float, reach: float
) -> np.ndarray:
    """Backward flow (H x W x 2) for what lies outside the rendered face: each pixel moves like
    the mesh vertices near it (Gaussian weights of width ``sigma``), fading to no motion
    ``reach`` pixels away from the face."""
    h, w = face.shape
    step = 4  # the field is smooth: compute it on a coarse grid, then upsample
    gy, gx = np.mgrid[0:h:step, 0:w:step].astype(np.float64)
    grid = np.c_[gx.ravel(), gy.ravel()]
    d2 = ((grid[:, None, :] - xy_to[None, :, :]) ** 2).sum(-1)
    wts = np.exp(-(d2 - d2.min(1, keepdims=True)) / (2 * sigma**2))
    motion = (wts @ (xy_to - xy_from)) / wts.sum(1, keepdims=True)
    dist = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 5)
    fade = np.exp(
        -cv2.resize(dist, (gx.shape[1], gx.shape[0]), interpolation=cv2.INTER_AREA) / reach
    )
    flow = motion.reshape(*gx.shape, 2) * fade[..., None]
    return cv2.resize(flow.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def render_yaw(
    src: PoseSource, yaw: float, supersample: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face turned to absolute ``yaw`` degrees (the fitted yaw is taken off first).

    Returns the image (same size as the source), the 68 projected landmarks (pixels; contour
    points follow the model's jaw vertices nearest the source jaw landmarks) and the face mask.
    Rendering runs at ``supersample`` x the size and is area-reduced, which anti-aliases the
    silhouette.
    """
    fit, img = src.fit, src.image
    h, w = img.shape[:2]
    turn = yaw - float(fit.pose.get_yaw_pitch_roll()[0])
    verts = turned_vertices(fit, turn)
    xy0 = fit.project(np.asarray(fit.mesh.vertices, np.float64))
    xy = fit.project(verts)
    k = supersample
    tri_id, bary = render.rasterize(
        (xy + 0.5) * k - 0.5, depth(fit, verts), np.asarray(fit.mesh.tvi), (w * k, h * k)
    )
    drawn = tri_id >= 0
    uv = render.interpolate(np.asarray(fit.mesh.texcoords), np.asarray(fit.mesh.tvi), tri_id, bary)
    face_hi = render.sample_texture(src.texture, uv, drawn)
    face = cv2.resize(face_hi, (w, h), interpolation=cv2.INTER_AREA)
    cover = cv2.resize(drawn.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    flow = surroundings_flow(xy0, xy, cover > 0.5, sigma=0.04 * w, reach=0.25 * w)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    behind = cv2.remap(
        img,
        gx - flow[..., 0],
        gy - flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    # where coverage is partial, ``face`` holds the face's share (zeros elsewhere were averaged in)
    a = cover[..., None]
    out = (
        np.clip(face.astype(np.float32) + (1 - a) * behind.astype(np.float32), 0, 255)
        .round()
        .astype(np.uint8)
    )
    return out, xy[src.landmark_vertices].astype(np.float32), cover > 0.5


def landmark_vertices(fit: sfm.Fit) -> np.ndarray:
    """A vertex per iBUG landmark: the mapped vertex for inner points; for the 17 jaw points
    (fitted as a contour, so unmapped) the vertex projecting nearest the source landmark."""
    m = sfm.load_model()
    ids = np.zeros(68, np.int64)
    xy0 = None
    for i in range(68):
        if i in m.ibug_to_vertex:
            ids[i] = m.ibug_to_vertex[i]
        else:
            if xy0 is None:
                xy0 = fit.project(np.asarray(fit.mesh.vertices, np.float64))
            ids[i] = int(np.argmin(((xy0 - fit.landmarks[i]) ** 2).sum(1)))
    return ids
