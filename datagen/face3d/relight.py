"""Physically based relighting of an aligned, roughly uniformly lit face with its SFM fit: the
built-in style pool of non-uniformly lit (NI) faces for the RaIN illumination model (CPGAN).

The photo is taken as the albedo under uniform light. In linear light every pixel is multiplied
by ``exposure * (ambient + (1 - ambient) * max(0, n.l) * visibility)``: Lambertian shading of the
fitted mesh's normals under one directional light plus ambient, with cast shadows by shadow
mapping the same mesh along the light. Camera space is eos's: x right, y up, z towards the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.core.params import ParamGroup
from datagen.face3d import morphable, render

GAMMA = 2.2
# Fraction of the image size over which mesh shading fades into the proxy (see _proxy_normals).
FEATHER = 0.05
# Outside the mesh: the outline's normals are spread with a Gaussian of this many image sizes,
# and relax to a camera-facing wall over this many (see _proxy_normals).
SPREAD = 0.06
RELAX = 0.25
# Shadow-map depth bias in shadow-map pixels, plus a slope term for surfaces the light grazes
# (their depth changes fast across one map pixel, so a flat bias would let them shadow themselves).
BIAS_PX = 1.0
BIAS_SLOPE = 1.0


@dataclass(frozen=True)
class RelightParams(ParamGroup):
    """The ``relight`` param group: how the random light is drawn."""

    GROUP = "relight"
    azimuth: float = 80.0  # degrees, uniform in [-azimuth, azimuth]; + = from the image's right
    elevation: float = 50.0  # degrees, uniform in [-elevation, elevation]; + = from above
    ambient: tuple[float, float] = (0.05, 0.35)  # ambient share, uniform in [lo, hi]
    exposure: tuple[float, float] = (0.4, 0.9)  # linear gain, uniform; low: NI faces are darker
    shadows: bool = True  # cast shadows by shadow mapping the mesh along the light

    def validate(self) -> None:
        for k in ("azimuth", "elevation"):
            if not 0 <= getattr(self, k) <= 90:
                raise ValueError(f"relight.{k} must be in [0, 90] degrees, got {getattr(self, k)}")
        lo, hi = self.ambient
        if not 0 <= lo <= hi <= 1:
            raise ValueError(
                f"relight.ambient must be [lo, hi] with 0 <= lo <= hi <= 1, got {self.ambient}"
            )
        lo, hi = self.exposure
        if not 0 < lo <= hi:
            raise ValueError(
                f"relight.exposure must be [lo, hi] with 0 < lo <= hi, got {self.exposure}"
            )


def random_light(rng: np.random.Generator, p: RelightParams) -> dict[str, float]:
    """One light drawn from ``p`` (always four draws, in this order, so streams stay aligned)."""
    return {
        "azimuth": float(rng.uniform(-p.azimuth, p.azimuth)),
        "elevation": float(rng.uniform(-p.elevation, p.elevation)),
        "ambient": float(rng.uniform(*p.ambient)),
        "exposure": float(rng.uniform(*p.exposure)),
    }


def light_direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector towards the light in camera space (0, 0 = from the camera)."""
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])


def _vertex_normals(v: np.ndarray, tris: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals in camera space, facing the camera."""
    a, b, c = (v[tris[:, i]] for i in range(3))
    face_n = np.cross(b - a, c - a)  # length = twice the area: the weighting comes for free
    corners = np.repeat(face_n, 3, axis=0)  # one row per (triangle, corner), as tris.ravel()
    n = np.stack([np.bincount(tris.ravel(), corners[:, i], minlength=len(v)) for i in range(3)], 1)
    n = n @ rotation.T
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    # the winding is the model's convention, not ours: flip the lot if the face looks away
    return -n if np.median(n[:, 2]) < 0 else n


def _screen_points(
    fit: morphable.Fit, v: np.ndarray, modelview: np.ndarray, size: int
) -> np.ndarray:
    """Vertices ``v`` as (x, y, z) in output pixels: x right, y *down* (image rows), z towards
    the camera, all in the same pixel units, so orthographic light maths works in it."""
    w, h = fit.image_size
    if w != h:
        raise ValueError(f"relight needs a square aligned crop, the fit is for {w}x{h}")
    k = size / w
    cam = fit.camera()
    hom = np.c_[v, np.ones(len(v))]
    xy = (hom @ cam[:2].T + 0.5) * k - 0.5  # pixel centres of the resized image
    scale = np.linalg.norm(cam[0, :3]) * k  # output pixels per model unit
    return np.c_[xy, (hom @ modelview[2]) * scale]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus every region it encloses (the mesh leaves the mouth open)."""
    outside = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2)
    return outside[1:-1, 1:-1] != 2


def _proxy_normals(normals: np.ndarray, mask: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Normals for the pixels the mesh does not cover (hair, ears, neck, background).

    There is no geometry there, so we continue the mesh smoothly: the normals along the mesh's
    outline are spread outwards (normalised Gaussian convolution) and relax, with the distance
    from the face, to those of a wall facing the camera. So the light wraps on round the sides
    of the head, the ears and the hair as it does on the face's rim, the background is lit like a
    wall, and the mesh's outline leaves no seam. We draw no edge of our own: the true outline of
    the hair is unknown, and any edge we drew would be in the wrong place.
    """
    size = mask.shape[0]
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    rim = (mask & (inside <= max(2.0, 0.02 * size))).astype(np.float32)
    # the kernel reaches half the image, where the relaxation below has long finished: no step
    # where it ends
    k = (2 * (size // 2) + 1,) * 2
    spread = cv2.GaussianBlur(normals.astype(np.float32) * rim[..., None], k, SPREAD * size)
    weight = cv2.GaussianBlur(rim, k, SPREAD * size)
    wall = np.array([0.0, 0.0, 1.0], np.float32)
    ext = np.where((weight > 0)[..., None], spread / np.maximum(weight, 1e-30)[..., None], wall)
    ext /= np.maximum(np.linalg.norm(ext, axis=2, keepdims=True), 1e-9)
    outside = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 3)
    alpha = np.exp(-((outside / (RELAX * size)) ** 2))[..., None]
    n = alpha * ext + (1 - alpha) * wall
    return n / np.maximum(np.linalg.norm(n, axis=2, keepdims=True), 1e-9)


def _cast_visibility(
    pts: np.ndarray, tris: np.ndarray, pixel_pts: np.ndarray, cos_nl: np.ndarray, light: np.ndarray
) -> np.ndarray:
    """Shadow mapping: share (0-1) of each of ``pixel_pts`` (M x 3, camera-like pixel units)
    that the mesh ``pts`` / ``tris`` does not hide from the directional ``light``."""
    # orthonormal light frame: the light's view axis is ``light``
    helper = np.array([0.0, 1.0, 0.0]) if abs(light[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, light)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(light, e1)
    frame = np.stack([e1, e2, light])
    lv, lp = pts @ frame.T, pixel_pts @ frame.T
    lo = lv[:, :2].min(0) - 2
    lv[:, :2] -= lo
    lp[:, :2] -= lo
    w, h = (np.ceil(lv[:, :2].max(0)).astype(int) + 3).tolist()
    tri_id, bary = render.rasterize(lv[:, :2], lv[:, 2], tris, (w, h))
    depth = render.interpolate(lv[:, 2:], tris, tri_id, bary)[..., 0]
    depth = np.pad(np.where(tri_id >= 0, depth, -np.inf), 1, constant_values=-np.inf)
    tan = np.sqrt(np.maximum(1 - cos_nl**2, 0)) / np.maximum(cos_nl, 0.2)
    z = lp[:, 2] + BIAS_PX + BIAS_SLOPE * tan
    # bilinear percentage-closer filtering: each of the four nearest map texels votes lit/unlit
    fx, fy = lp[:, 0] + 1, lp[:, 1] + 1  # + 1 for the padding
    x0 = np.clip(np.floor(fx).astype(int), 0, w)
    y0 = np.clip(np.floor(fy).astype(int), 0, h)
    ax, ay = np.clip(fx - x0, 0, 1), np.clip(fy - y0, 0, 1)
    vis = np.zeros(len(lp))
    for dx, dy, wt in (
        (0, 0, (1 - ax) * (1 - ay)),
        (1, 0, ax * (1 - ay)),
        (0, 1, (1 - ax) * ay),
        (1, 1, ax * ay),
    ):
        vis += wt * (z >= depth[y0 + dy, x0 + dx])
    return vis


def _shade(
    fit: morphable.Fit, size: int, light: dict[str, float], shadows: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``shading`` plus the cast-shadow visibility (size x size; 1 outside the face and where
    the face turns away from the light: those are dark already, not shadowed)."""
    ldir = light_direction(light["azimuth"], light["elevation"])
    # eos hands out lists of small vectors: convert them once
    v = np.asarray(fit.mesh.vertices, np.float64)
    tris = np.asarray(fit.mesh.tvi, np.int64)
    modelview = np.asarray(fit.pose.get_modelview(), np.float64)
    pts = _screen_points(fit, v, modelview, size)
    tri_id, bary = render.rasterize(pts[:, :2], pts[:, 2], tris, (size, size))
    mask = tri_id >= 0
    per_vertex = np.c_[_vertex_normals(v, tris, modelview[:3, :3]), pts[:, 2]]
    inter = render.interpolate(per_vertex, tris, tri_id, bary)
    normals = inter[..., :3] / np.maximum(
        np.linalg.norm(inter[..., :3], axis=2, keepdims=True), 1e-9
    )
    face = _fill_holes(mask)
    proxy = _proxy_normals(normals, mask, face)
    # the mouth slit takes the normals spread from the lips round it (the proxy field), so the
    # face is one piece and the feathering below need not stop there
    normals[face & ~mask] = proxy[face & ~mask]
    cos_mesh = np.maximum(normals @ ldir, 0)
    vis = np.ones((size, size))
    # only surfaces facing the light can have a cast shadow; the rest is dark anyway
    facing = mask & (cos_mesh > 0)
    if shadows and facing.any():
        ys, xs = np.nonzero(facing)
        # (x, -y, z): image rows point down, the light frame wants camera axes (y up)
        flip = np.array([1.0, -1.0, 1.0])
        vis[facing] = _cast_visibility(
            pts * flip, tris, np.c_[xs, ys, inter[facing][:, 3]] * flip, cos_mesh[facing], ldir
        )
        # a little blur hides the shadow map's texel steps
        vis = cv2.GaussianBlur(vis, (0, 0), max(0.6, size / 256))
    cos_proxy = np.maximum(proxy @ ldir, 0)
    # mesh shading inside, fading into the proxy over a thin band along the mesh's outline
    dist = cv2.distanceTransform(face.astype(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(dist / max(FEATHER * size, 1.0), 0, 1)
    weight = t * t * (3 - 2 * t)
    direct = weight * cos_mesh * vis + (1 - weight) * cos_proxy
    a = light["ambient"]
    shade = light["exposure"] * (a + (1 - a) * direct)
    return shade.astype(np.float32), mask, vis


def shading(
    fit: morphable.Fit, size: int, light: dict[str, float], shadows: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Linear-light gain per pixel (exposure and ambient included) for the fit's image resized
    to ``size`` x ``size``, and the pixels the mesh covers."""
    shade, mask, _ = _shade(fit, size, light, shadows)
    return shade, mask


_TO_LINEAR = ((np.arange(256) / 255.0) ** GAMMA).astype(np.float32)


def apply_shading(image: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """``image`` (uint8, sRGB-ish) multiplied by ``shade`` in linear light, back to uint8."""
    linear = _TO_LINEAR[image] * shade[..., None]
    return np.clip(np.power(linear, 1 / GAMMA) * 255 + 0.5, 0, 255).astype(np.uint8)


def relight(
    image: np.ndarray, fit: morphable.Fit, rng: np.random.Generator, p: RelightParams
) -> tuple[np.ndarray, dict[str, float]]:
    """``image`` (S x S x 3 uint8; the fit may be for another size of the same crop) under a
    random light drawn from ``p``; metadata: the light and ``shadow_fraction``, the share of face
    pixels facing the light but hidden from it by the face itself."""
    h, w = image.shape[:2]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or h != w:
        raise ValueError(
            f"relight needs a square H x W x 3 uint8 image, got {image.shape} {image.dtype}"
        )
    light = random_light(rng, p)
    shade, mask, vis = _shade(fit, w, light, p.shadows)
    out = apply_shading(image, shade)
    shadowed = mask & (vis < 0.5)
    frac = float(shadowed.sum() / max(mask.sum(), 1))
    return out, {**light, "shadow_fraction": frac}
