"""Re-rendering an aligned face at a new yaw from its Surrey Face Model fit (VividGAN's data).

A face is fitted once (``datagen.face3d.morphable.fit``), its texture taken by our own
extraction (``render.extract_texture``), and every target yaw re-renders the textured mesh turned
about the head's vertical axis under the same camera. What lies outside the mesh (hair, ears,
neck, background) follows the mesh's new outline with a warp along rays from the face centre
(``surroundings_map``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from datagen.face3d import morphable, render

# The SFM's origin is near the nose tip and the face spans z -103..3 mm; a head turns about an
# axis well behind the face, roughly above the neck.
PIVOT_DEPTH_MM = 80.0


@dataclass
class PoseSource:
    """One face ready to be re-rendered: image, fit, texture with its visibility."""

    image: np.ndarray  # H x W x 3 uint8 (the large aligned crop)
    fit: morphable.Fit
    texture: np.ndarray  # T x T x 3 uint8
    landmark_vertices: np.ndarray  # 68 vertex ids whose projections are the landmarks
    face: np.ndarray  # H x W bool: pixels the fitted mesh covers in ``image``
    face_centre: np.ndarray  # x, y: the centre the surroundings warp works around


def mirror_fill(texture: np.ndarray, seen: np.ndarray, layout: np.ndarray) -> np.ndarray:
    """Texels not ``seen`` in the photo taken from the other side of the face.

    The SFM texture map is left-right symmetric about its vertical centre line; what is still
    missing after mirroring is inpainted from its surroundings, within the map's ``layout`` (the
    texels any triangle covers, plus a margin for bilinear lookups at the seams)."""
    rgb = np.ascontiguousarray(texture[..., :3])
    mirrored, mseen = rgb[:, ::-1], seen[:, ::-1]
    out = rgb.copy()
    take = ~seen & mseen
    out[take] = mirrored[take]
    margin = cv2.dilate(layout.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    holes = (~seen & ~mseen & margin).astype(np.uint8)
    if holes.any():
        out = cv2.inpaint(out, holes, 3, cv2.INPAINT_TELEA)
    return out


@lru_cache(maxsize=4)
def texture_layout(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel -> (triangle, barycentrics) of the SFM's texture map; the same for every face."""
    m = morphable.load_model()
    uv = np.asarray(m.model.get_texture_coordinates(), np.float64)
    tris = np.asarray(m.model.get_shape_model().get_triangle_list(), np.int64)
    tri_id, bary = render.uv_layout(uv, tris, size)
    tri_id.setflags(write=False)
    bary.setflags(write=False)
    return tri_id, bary


def prepare(image: np.ndarray, landmarks: np.ndarray, texture_size: int = 512) -> PoseSource:
    """Fit the SFM to ``landmarks`` (pixels of ``image``), then ``from_fit``."""
    h, w = image.shape[:2]
    return from_fit(image, morphable.fit(landmarks, (w, h)), texture_size)


def from_fit(image: np.ndarray, fit: morphable.Fit, texture_size: int = 512) -> PoseSource:
    """A face ready to turn: its texture map (unseen texels mirrored), the landmark vertices and
    the face region of ``image`` under ``fit``."""
    h, w = image.shape[:2]
    if (w, h) != tuple(fit.image_size):
        raise ValueError(f"image is {w}x{h} but the fit is for {fit.image_size}")
    v = np.asarray(fit.mesh.vertices, np.float64)
    xy, z, tris = fit.project(v), depth(fit, v), np.asarray(fit.mesh.tvi)
    layout = texture_layout(texture_size)
    raster = render.rasterize(xy, z, tris, (w, h))
    texture, seen = render.extract_texture(image, xy, z, tris, layout, raster=raster)
    face = raster[0] >= 0  # the pixels the fitted mesh covers
    if face.sum() < 0.01 * face.size:
        raise morphable.FitRejected("fit outside the image", f"the mesh covers {face.sum()} pixels")
    ys, xs = np.nonzero(face)
    return PoseSource(
        image,
        fit,
        mirror_fill(texture, seen, layout[0] >= 0),
        landmark_vertices(fit),
        face,
        np.array([xs.mean(), ys.mean()]),
    )


def yaw_rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def turned_vertices(fit: morphable.Fit, yaw: float) -> np.ndarray:
    """Mesh vertices turned by ``yaw`` degrees about the head's vertical (model y) axis."""
    pivot = np.array([0.0, 0.0, -PIVOT_DEPTH_MM])
    v = np.asarray(fit.mesh.vertices, np.float64)
    return (v - pivot) @ yaw_rotation(yaw).T + pivot


def depth(fit: morphable.Fit, vertices: np.ndarray) -> np.ndarray:
    """Camera-space z (larger is nearer the camera)."""
    mv = np.asarray(fit.pose.get_modelview())
    return (np.c_[vertices, np.ones(len(vertices))] @ mv.T)[:, 2]


def silhouette_radii(face: np.ndarray, centre: np.ndarray, bins: int = 360) -> np.ndarray:
    """Distance from ``centre`` to the outline of ``face`` (H x W bool) in ``bins`` directions:
    the farthest face pixel per direction, smoothed, gaps interpolated round the circle."""
    ys, xs = np.nonzero(face)
    dx, dy = xs - centre[0], ys - centre[1]
    b = ((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * bins).astype(np.int64) % bins
    r = np.full(bins, -1.0)
    np.maximum.at(r, b, np.hypot(dx, dy) + 0.5)
    seen = np.nonzero(r >= 0)[0]
    if len(seen) == 0:
        return np.zeros(bins)
    r = np.interp(np.arange(bins), seen, r[seen], period=bins)
    taps = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    padded = np.r_[r[-6:], r, r[:6]]  # round the circle
    return np.convolve(padded, taps / taps.sum(), mode="valid")


def surroundings_map(
    face_from: np.ndarray, face_to: np.ndarray, centre: np.ndarray, reach: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel outside the turned face samples the source image (``cv2.remap`` maps).

    Along every ray from ``centre``, the outline of the turned face ``face_to`` is taken back to
    the outline of the source face ``face_from``, and the shift fades out over ``reach`` pixels
    beyond it: what lay just outside the source face (ears, hair, jaw line) stays just outside the
    turned one, the far side of a turned head pulls its surroundings in, the near side pushes them
    out, and no part of the source face shows beside the new silhouette.
    """
    h, w = face_to.shape
    bins = 360
    r0 = silhouette_radii(face_from, centre, bins)
    r1 = silhouette_radii(face_to, centre, bins)
    reach = max(reach, 1.5 * float(np.abs(r0 - r1).max()))  # keeps the map free of folds
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = gx - centre[0], gy - centre[1]
    r = np.hypot(dx, dy)
    pos = (np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * bins
    grid = np.arange(bins + 1)
    at0 = np.interp(pos, grid, np.r_[r0, r0[0]])
    at1 = np.interp(pos, grid, np.r_[r1, r1[0]])
    beyond = np.clip(r - at1, 0, None)
    # inside the turned face the map is unused; keep it continuous there anyway
    new_r = r + (at0 - at1) * np.exp(-beyond / reach * 3)
    scale = np.divide(new_r, r, out=np.ones_like(r), where=r > 1e-9)
    return (
        (centre[0] + dx * scale).astype(np.float32),
        (centre[1] + dy * scale).astype(np.float32),
    )


@dataclass
class Render:
    """One re-rendered view."""

    image: np.ndarray  # H x W x 3 uint8
    landmarks: np.ndarray  # 68 x 2 float32, pixels
    face: np.ndarray  # H x W bool: where the mesh covers at least half a pixel
    yaw: float  # absolute yaw of the rendered head, degrees


def render_yaws(
    src: PoseSource, yaws: list[float], supersample: int = 1, feather: float = 0.03
) -> list[Render]:
    """The face turned to each absolute yaw in ``yaws`` (degrees; the fitted yaw is taken off
    first), all poses rasterised in one batch.

    Rasterisation runs at ``supersample`` x the source size and is area-reduced. Landmarks are
    the projections of the model vertices in ``src.landmark_vertices``. ``feather``: width of
    the blend between the rendered face and its surroundings, as a fraction of the image width.
    """
    fit, img = src.fit, src.image
    h, w = img.shape[:2]
    tvi = np.asarray(fit.mesh.tvi)
    fitted = float(fit.pose.get_yaw_pitch_roll()[0])
    verts = [turned_vertices(fit, y - fitted) for y in yaws]
    xys = np.stack([fit.project(v) for v in verts])
    k = supersample
    tri_ids, barys = render.rasterize_batch(
        (xys + 0.5) * k - 0.5, np.stack([depth(fit, v) for v in verts]), tvi, (w * k, h * k)
    )
    centre = src.face_centre
    uv_per_vertex = np.asarray(fit.mesh.texcoords)
    out = []
    for yaw, xy, tri_id, bary in zip(yaws, xys, tri_ids, barys, strict=True):
        drawn = tri_id >= 0
        uv = render.interpolate(uv_per_vertex, tvi, tri_id, bary)
        face = render.sample_texture(src.texture, uv, drawn)
        cover = drawn.astype(np.float32)
        if k > 1:
            face = cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)
            cover = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
        mx, my = surroundings_map(src.face, cover > 0.5, centre, reach=0.25 * w)
        behind = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        # ``face`` is premultiplied (where coverage is partial, zeros were averaged in). The mesh's
        # rim fades into the surroundings over ``feather`` px so that the forehead's top edge and
        # the jaw do not cut hard lines into hair and neck.
        inner = cv2.distanceTransform((cover > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        fade = np.clip(inner / max(feather * w, 1e-6), 0, 1)[..., None]
        a = cover[..., None] * fade
        composite = np.clip(
            face.astype(np.float32) * fade + (1 - a) * behind.astype(np.float32), 0, 255
        )
        out.append(
            Render(
                composite.round().astype(np.uint8),
                xy[src.landmark_vertices].astype(np.float32),
                cover > 0.5,
                float(yaw),
            )
        )
    return out


def render_yaw(src: PoseSource, yaw: float, **kwargs: Any) -> Render:
    """``render_yaws`` for one yaw."""
    return render_yaws(src, [yaw], **kwargs)[0]


def landmark_vertices(fit: morphable.Fit) -> np.ndarray:
    """A vertex per iBUG landmark: the mapped vertex for inner points; for the 17 jaw points
    (fitted as a contour, so unmapped) the vertex projecting nearest the source landmark."""
    m = morphable.load_model()
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
