"""Physically based relighting of an aligned, roughly uniformly lit face with its SFM fit: the
built-in style pool of non-uniformly lit (NI) faces for the RaIN illumination model (CPGAN), and
the ``physical`` source of the illumination pairs.

The photo is taken as the albedo under uniform light. In linear light every pixel of channel c
becomes ``exposure * (albedo_c * (ambient + (1 - ambient) * sum_i s_i t_ic max(0, n.l_i) v_i)
+ (1 - ambient) * k_s * sum_i s_i t_ic max(0, n.h_i)^shininess v_i)``: Lambertian shading of the
fitted mesh's normals under a key light (s = 1) and, sometimes, a second light (s < 1), each
with its colour tint t (luminance 1) and its cast-shadow visibility v (shadow mapping the same
mesh along the light, blurred into a penumbra), plus a Blinn-Phong highlight of strength k_s
on the face. Camera space is eos's: x right, y up, z towards the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.core.params import ParamGroup
from datagen.face3d import morphable, render

GAMMA = 2.2
# Rec. 709 weights: the tints are in linear light, and a tint keeps luminance 1.
LINEAR_LUMA = np.array([0.2126, 0.7152, 0.0722])
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
# The penumbra blur never goes below this many pixels: it hides the shadow map's texel steps.
MIN_PENUMBRA_PX = 0.6


@dataclass(frozen=True)
class RelightParams(ParamGroup):
    """The ``relight`` param group: how the random light is drawn (every range uniform)."""

    GROUP = "relight"
    # |azimuth| in degrees [lo, hi], either side; + = from the image's right, > 90 = from behind
    azimuth: tuple[float, float] = (40.0, 95.0)
    elevation: tuple[float, float] = (-30.0, 55.0)  # degrees [lo, hi]; + = from above
    ambient: tuple[float, float] = (0.008, 0.6)  # ambient share of the light
    # how the ambient share is drawn: uniform in [lo, hi], or log (uniform in log: the key-to-fill
    # ratio uniform in photographic stops)
    ambient_scale: str = "log"
    exposure: tuple[float, float] = (0.6, 1.4)  # linear gain
    shadows: bool = True  # cast shadows by shadow mapping the mesh along the light
    penumbra: tuple[float, float] = (0.0, 0.02)  # shadow blur sd, image sizes (0: hard, 0.6 px)
    tint: float = 0.1  # largest chroma of a light's colour (0: white), linear RGB
    second: float = 0.0  # probability of a second light, drawn like the key light
    second_strength: tuple[float, float] = (0.2, 0.6)  # its intensity relative to the key
    specular: tuple[float, float] = (0.0, 0.0)  # Blinn-Phong highlight strength on the face
    shininess: float = 16.0  # Blinn-Phong exponent

    def validate(self) -> None:
        lo, hi = self.azimuth
        if not 0 <= lo <= hi <= 180:
            raise ValueError(
                f"relight.azimuth must be [lo, hi] with 0 <= lo <= hi <= 180 degrees, got "
                f"{self.azimuth}"
            )
        lo, hi = self.elevation
        if not -90 <= lo <= hi <= 90:
            raise ValueError(
                f"relight.elevation must be [lo, hi] with -90 <= lo <= hi <= 90, got "
                f"{self.elevation}"
            )
        for k, top in (("ambient", 1.0), ("penumbra", 0.5), ("second_strength", 1.0)):
            lo, hi = getattr(self, k)
            if not 0 <= lo <= hi <= top:
                raise ValueError(
                    f"relight.{k} must be [lo, hi] with 0 <= lo <= hi <= {top:g}, got "
                    f"{getattr(self, k)}"
                )
        if self.ambient_scale not in ("linear", "log"):
            raise ValueError(
                f"relight.ambient_scale must be linear or log, got {self.ambient_scale!r}"
            )
        if self.ambient_scale == "log" and self.ambient[0] <= 0:
            raise ValueError(
                f"relight.ambient_scale log needs relight.ambient lo > 0, got {self.ambient}"
            )
        lo, hi = self.exposure
        if not 0 < lo <= hi:
            raise ValueError(
                f"relight.exposure must be [lo, hi] with 0 < lo <= hi, got {self.exposure}"
            )
        lo, hi = self.specular
        if not 0 <= lo <= hi:
            raise ValueError(
                f"relight.specular must be [lo, hi] with 0 <= lo <= hi, got {self.specular}"
            )
        if not 0 <= self.tint <= 0.5:
            raise ValueError(f"relight.tint must be in [0, 0.5], got {self.tint}")
        if not 0 <= self.second <= 1:
            raise ValueError(f"relight.second must be a probability in [0, 1], got {self.second}")
        if self.shininess <= 0:
            raise ValueError(f"relight.shininess must be > 0, got {self.shininess}")


def _chroma_basis() -> np.ndarray:
    """Two orthonormal directions in linear RGB that leave ``LINEAR_LUMA`` luminance alone."""
    a = np.array([1.0, -1.0, 0.0])
    a -= LINEAR_LUMA * (a @ LINEAR_LUMA) / (LINEAR_LUMA @ LINEAR_LUMA)
    a /= np.linalg.norm(a)
    b = np.cross(LINEAR_LUMA, a)
    return np.stack([a, b / np.linalg.norm(b)])


CHROMA = _chroma_basis()


def tint_rgb(chroma: float, hue: float) -> np.ndarray:
    """A light colour: linear RGB multipliers with luminance 1, ``chroma`` from white towards the
    hue angle ``hue`` (degrees); clipped at 0 (a saturated tint loses a little luminance)."""
    h = np.deg2rad(hue)
    t = 1.0 + chroma * (np.cos(h) * CHROMA[0] + np.sin(h) * CHROMA[1])
    return np.maximum(t, 0.0)


def random_light(rng: np.random.Generator, p: RelightParams) -> dict[str, float]:
    """One lighting drawn from ``p``. Always the same 14 draws in the same order, whatever the
    params (a light that is off still draws), so streams stay aligned across settings."""
    u = rng.uniform(size=14)

    def between(x: float, r: tuple[float, float]) -> float:
        return float(r[0] + x * (r[1] - r[0]))

    def azimuth(x: float) -> float:
        # the sign and the size from one draw: 2x - 1 in [-1, 1] (lo = 0: uniform in +-hi)
        t = 2 * x - 1
        return float(np.sign(t) * between(abs(t), p.azimuth))

    second = u[9] < p.second
    return {
        "azimuth": azimuth(u[0]),
        "elevation": between(u[1], p.elevation),
        "ambient": (
            between(u[2], p.ambient)
            if p.ambient_scale == "linear"
            else float(np.exp(between(u[2], (np.log(p.ambient[0]), np.log(p.ambient[1])))))
        ),
        "exposure": between(u[3], p.exposure),
        "penumbra": between(u[4], p.penumbra),
        "tint": float(p.tint * u[5]),
        "hue": float(360 * u[6]),
        "specular": between(u[7], p.specular),
        "shininess": float(p.shininess),
        "second": between(u[8], p.second_strength) if second else 0.0,
        "second_azimuth": azimuth(u[10]),
        "second_elevation": between(u[11], p.elevation),
        "second_tint": float(p.tint * u[12]),
        "second_hue": float(360 * u[13]),
    }


# The keys of a ``random_light`` dict, in its order (the pairs index's ``light`` struct).
LIGHT_FIELDS = (
    "azimuth",
    "elevation",
    "ambient",
    "exposure",
    "penumbra",
    "tint",
    "hue",
    "specular",
    "shininess",
    "second",
    "second_azimuth",
    "second_elevation",
    "second_tint",
    "second_hue",
)


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


@dataclass(frozen=True)
class Geometry:
    """What every light of one fit and size shares: the mesh's normals (mesh pixels; the proxy
    field elsewhere), the mesh-to-proxy blend weight and what the shadow maps need."""

    pts: np.ndarray  # V x 3 screen points (x right, y down, z to the camera; pixels)
    tris: np.ndarray
    mask: np.ndarray  # size x size, pixels the mesh covers
    depth: np.ndarray  # size x size, the mesh's screen z (where ``mask``)
    normals: np.ndarray  # size x size x 3, the mesh's (mouth slit: the proxy's)
    proxy: np.ndarray  # size x size x 3, the proxy field (see _proxy_normals)
    weight: np.ndarray  # size x size, 1 inside the face, fading to 0 across its outline


def face_geometry(fit: morphable.Fit, size: int) -> Geometry:
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
    # mesh shading inside, fading into the proxy over a thin band along the mesh's outline
    dist = cv2.distanceTransform(face.astype(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(dist / max(FEATHER * size, 1.0), 0, 1)
    return Geometry(pts, tris, mask, inter[..., 3], normals, proxy, t * t * (3 - 2 * t))


def _visibility(g: Geometry, ldir: np.ndarray, cos_mesh: np.ndarray, penumbra: float) -> np.ndarray:
    """Cast-shadow visibility of one light (size x size; 1 outside the face and where the face
    turns away from the light: those are dark already, not shadowed), blurred by ``penumbra``
    image sizes (at least ``MIN_PENUMBRA_PX``)."""
    size = g.mask.shape[0]
    vis = np.ones((size, size))
    # only surfaces facing the light can have a cast shadow; the rest is dark anyway
    facing = g.mask & (cos_mesh > 0)
    if facing.any():
        ys, xs = np.nonzero(facing)
        # (x, -y, z): image rows point down, the light frame wants camera axes (y up)
        flip = np.array([1.0, -1.0, 1.0])
        vis[facing] = _cast_visibility(
            g.pts * flip, g.tris, np.c_[xs, ys, g.depth[facing]] * flip, cos_mesh[facing], ldir
        )
        vis = cv2.GaussianBlur(vis, (0, 0), max(MIN_PENUMBRA_PX, penumbra * size))
    return vis


@dataclass(frozen=True)
class LightMaps:
    """One lighting of one face, in linear light (size x size [x 3])."""

    gain: np.ndarray  # x 3: multiplies the albedo (exposure and ambient included)
    highlight: np.ndarray  # x 3: added (the specular term)
    mask: np.ndarray  # the pixels the mesh covers
    visibility: np.ndarray  # the key light's cast-shadow visibility


def light_maps(
    fit: morphable.Fit,
    size: int,
    light: dict[str, float],
    shadows: bool,
    geometry: Geometry | None = None,
) -> LightMaps:
    """The gain and highlight maps of ``light`` (a ``random_light`` dict; keys it lacks mean
    white, no penumbra, no highlight, no second light) for the fit's image resized to ``size``.
    ``geometry``: ``face_geometry(fit, size)``, when several lights share it."""
    g = geometry if geometry is not None else face_geometry(fit, size)
    lights = [("", 1.0)]
    if light.get("second", 0.0) > 0:
        lights.append(("second_", light["second"]))
    diffuse = np.zeros((size, size, 3))
    highlight = np.zeros((size, size, 3))
    key_vis = np.ones((size, size))
    spec = light.get("specular", 0.0)
    view = np.array([0.0, 0.0, 1.0])
    for prefix, strength in lights:
        ldir = light_direction(light[prefix + "azimuth"], light[prefix + "elevation"])
        colour = tint_rgb(light.get(prefix + "tint", 0.0), light.get(prefix + "hue", 0.0))
        cos_mesh = np.maximum(g.normals @ ldir, 0)
        vis = _visibility(g, ldir, cos_mesh, light.get("penumbra", 0.0)) if shadows else 1.0
        if not prefix:
            key_vis = key_vis * vis
        direct = g.weight * cos_mesh * vis + (1 - g.weight) * np.maximum(g.proxy @ ldir, 0)
        diffuse += strength * direct[..., None] * colour
        if spec > 0:
            half = (ldir + view) / np.linalg.norm(ldir + view)
            # only where the surface faces the light, and only on the face (the proxy's
            # normals are a guess: a highlight there would be a painted one)
            lobe = np.maximum(g.normals @ half, 0) ** light.get("shininess", 16.0)
            lobe = g.weight * lobe * (cos_mesh > 0) * vis
            highlight += strength * spec * lobe[..., None] * colour
    a, e = light["ambient"], light["exposure"]
    gain = e * (a + (1 - a) * diffuse)
    return LightMaps(
        gain.astype(np.float32), (e * (1 - a) * highlight).astype(np.float32), g.mask, key_vis
    )


def shading(
    fit: morphable.Fit, size: int, light: dict[str, float], shadows: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Linear-light gain per pixel and channel (size x size x 3; exposure and ambient included)
    for the fit's image resized to ``size`` x ``size``, and the pixels the mesh covers."""
    m = light_maps(fit, size, light, shadows)
    return m.gain, m.mask


_TO_LINEAR = ((np.arange(256) / 255.0) ** GAMMA).astype(np.float32)


def apply_shading(
    image: np.ndarray, shade: np.ndarray, highlight: np.ndarray | None = None
) -> np.ndarray:
    """``image`` (uint8, sRGB-ish) multiplied by ``shade`` (H x W or H x W x 3) in linear light,
    plus ``highlight`` (H x W x 3, linear), back to uint8."""
    shade = shade if shade.ndim == 3 else shade[..., None]
    linear = _TO_LINEAR[image] * shade
    if highlight is not None:
        linear = linear + highlight
    return np.clip(np.power(linear, 1 / GAMMA) * 255 + 0.5, 0, 255).astype(np.uint8)


def relight_with(
    image: np.ndarray,
    fit: morphable.Fit,
    light: dict[str, float],
    shadows: bool,
    geometry: Geometry | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """``image`` (S x S x 3 uint8; the fit may be for another size of the same crop) under
    ``light``; metadata: the light and ``shadow_fraction``, the share of face pixels facing the
    key light but hidden from it by the face itself. Replays a recorded light exactly.
    ``geometry``: ``face_geometry(fit, image side)``, to relight one face many times."""
    h, w = image.shape[:2]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or h != w:
        raise ValueError(
            f"relight needs a square H x W x 3 uint8 image, got {image.shape} {image.dtype}"
        )
    m = light_maps(fit, w, light, shadows, geometry)
    out = apply_shading(image, m.gain, m.highlight)
    shadowed = m.mask & (m.visibility < 0.5)
    frac = float(shadowed.sum() / max(m.mask.sum(), 1))
    return out, {**light, "shadow_fraction": frac}


def relight(
    image: np.ndarray, fit: morphable.Fit, rng: np.random.Generator, p: RelightParams
) -> tuple[np.ndarray, dict[str, float]]:
    """``image`` under a random light drawn from ``p`` (see ``relight_with``)."""
    return relight_with(image, fit, random_light(rng, p), p.shadows)
