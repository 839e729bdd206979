"""Face profiling: the whole picture as one mesh, so that a turned head carries its hair, ears,
neck and background with it instead of tearing from them.

After Zhu et al., "Face Alignment Across Large Poses: A 3D Solution" (CVPR 2016, s 4; the
profiling of 3DDFA and HPEN): anchor points around the fitted face are given a depth and
triangulated together with the face mesh, and the whole mesh is turned and rendered with a
z-buffer. Our anchors are rings on rays from the face centre (a polar grid, so the triangulation
is regular; a cell that a concave outline folds in the source picture is left out of every
render, as a cell the turn flips is):

- ring 0 lies on the fitted face surface just inside its outline (``inset_px``), so it moves
  exactly as the face does;
- head rings 1..``rings`` reach ``margin`` (a share of the face's radius in each direction)
  beyond the outline and fall back behind the face rim by ``slope`` millimetres per millimetre
  outwards (1: the 45 degree fall-off of a round head's edge), so hair, ears and the top of the
  neck turn with the face and never come in front of it;
- a static ring at ``static`` beyond the outline, and everything outside it, does not move: the
  background stays where it was, and the band between the head and the static ring stretches or
  compresses smoothly to follow the turned head (``blend`` rings spaced evenly across it in every
  pose keep its triangles small for the rasteriser).

Every vertex carries the source pixel it came from, so a render is one lookup into the photo
(``turning.render_yaws``) and its source map says, per rendered pixel, where it came from
(``datagen.face3d.continuity`` measures tears on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.core.params import ParamGroup


@dataclass(frozen=True)
class HeadShape(ParamGroup):
    """How far around the face the picture turns with it (``pose.head`` in params.yaml)."""

    GROUP = "pose.head"

    directions: int = 96  # rays round the face centre
    rings: int = 3  # head rings between the face outline and ``margin``
    margin: float = 0.3  # head outline beyond the face outline, share of the face radius
    static: float = 0.5  # where the picture stops moving, share of the face radius beyond it
    inset_px: float = 3.0  # ring 0 inside the face outline, source pixels
    slope: float = 1.0  # head rings fall back this many mm per mm outwards
    blend: int = 3  # rings spaced evenly between the head's outline and the static ring

    def validate(self) -> None:
        if self.directions < 16 or self.rings < 1 or self.blend < 0:
            raise ValueError(
                "pose.head needs directions >= 16, rings >= 1 and blend >= 0, not "
                f"{self.directions}, {self.rings}, {self.blend}"
            )
        if not 0 < self.margin < self.static:
            raise ValueError(
                f"pose.head needs 0 < margin < static, not margin {self.margin}, "
                f"static {self.static}"
            )
        if self.inset_px < 0 or self.slope < 0:
            raise ValueError("pose.head.inset_px and pose.head.slope must be >= 0")


@dataclass
class HeadMesh:
    """The anchors of one face: ``turning`` points (model space, turned with the face),
    ``static`` points (source pixels, never moved) and ``blend`` rings between the last turning
    ring and the static one, triangulated with the face mesh.

    ``triangles`` index the concatenation [face mesh vertices (n_face), ``turning``, blend rings
    (``blend_positions``), ``static``].
    """

    turning: np.ndarray  # (rings + 1) * directions x 3 model-space points, ring by ring
    turning_xy: np.ndarray  # ... x 2 their source pixels
    static: np.ndarray  # directions x 2 source pixels
    blend: int
    triangles: np.ndarray  # T x 3
    n_face: int

    def blend_rings(self, inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
        """Values at the blend rings' points (blend * directions, ...), spaced evenly between
        ``inner`` (the last turning ring's values, directions x ...) and ``outer`` (the static
        ring's)."""
        t = np.arange(1, self.blend + 1) / (self.blend + 1)
        t = t.reshape(-1, *[1] * np.ndim(inner))
        out = (1 - t) * np.asarray(inner)[None] + t * np.asarray(outer)[None]
        return out.reshape(-1, *np.shape(inner)[1:])


def back_project(camera: np.ndarray, modelview: np.ndarray, xy: np.ndarray, z: np.ndarray):
    """Model-space points that the affine ``camera`` (3x4) sends to pixels ``xy`` (N x 2) at
    camera-space depth ``z`` (N; the ``modelview``'s third row)."""
    a = np.stack([camera[0, :3], camera[1, :3], modelview[2, :3]])
    b = np.c_[xy[:, 0] - camera[0, 3], xy[:, 1] - camera[1, 3], z - modelview[2, 3]]
    return np.linalg.solve(a, b.T).T


def outline_radii(face: np.ndarray, centre: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Distance from ``centre`` to the farthest pixel of ``face`` (H x W bool) along each of
    ``angles`` (radians), over a +-half-step wedge, smoothed round the circle."""
    ys, xs = np.nonzero(face)
    dx, dy = xs - centre[0], ys - centre[1]
    n = len(angles)
    b = np.round((np.arctan2(dy, dx) - angles[0]) / (2 * np.pi) * n).astype(np.int64) % n
    r = np.full(n, -1.0)
    np.maximum.at(r, b, np.hypot(dx, dy) + 0.5)
    seen = np.nonzero(r >= 0)[0]
    if len(seen) == 0:
        raise ValueError("empty face region")
    r = np.interp(np.arange(n), seen, r[seen], period=n)
    taps = np.array([1.0, 2.0, 1.0]) / 4
    return np.convolve(np.r_[r[-1:], r, r[:1]], taps, mode="valid")


def surface_points(
    tri_id: np.ndarray,
    bary: np.ndarray,
    vertices: np.ndarray,
    triangles: np.ndarray,
    centre: np.ndarray,
    angles: np.ndarray,
    radii: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per ray, the model-space surface point under the pixel at ``radii`` from ``centre``
    (stepping inwards until a face pixel is found); returns (points N x 3, pixels N x 2)."""
    h, w = tri_id.shape
    pts, pix = [], []
    for a, r in zip(angles, radii, strict=True):
        u = np.array([np.cos(a), np.sin(a)])
        for rr in np.arange(r, 0, -1.0):
            x, y = centre + rr * u
            xi, yi = int(round(x)), int(round(y))
            if 0 <= xi < w and 0 <= yi < h and tri_id[yi, xi] >= 0:
                t = tri_id[yi, xi]
                pts.append(bary[yi, xi] @ vertices[triangles[t]])
                pix.append((xi, yi))  # the pixel the point was read at
                break
        else:
            raise ValueError(f"no face pixel along the ray at {np.degrees(a):.0f} degrees")
    return np.asarray(pts), np.asarray(pix)


def ring_triangles(first: int, rings: int, n: int) -> np.ndarray:
    """Two triangles per cell of a polar grid of ``rings`` + 1 rings of ``n`` points each,
    numbered ring by ring from ``first``."""
    out = []
    for k in range(rings):
        for j in range(n):
            a, b = first + k * n + j, first + k * n + (j + 1) % n
            c, d = a + n, b + n
            out += [(a, b, d), (a, d, c)]
    return np.asarray(out, np.int64)


def head_mesh(
    vertices: np.ndarray,
    triangles: np.ndarray,
    raster: tuple[np.ndarray, np.ndarray],
    face: np.ndarray,
    centre: np.ndarray,
    camera: np.ndarray,
    modelview: np.ndarray,
    shape: HeadShape,
) -> HeadMesh:
    """The anchors of one fitted face (module docstring).

    ``vertices`` (N x 3, model space) and ``triangles`` are the fitted mesh, ``raster`` its
    ``render.rasterize`` in the source picture, ``face`` the pixels it covers, ``centre`` the
    rays' origin, ``camera`` the fit's 3x4 affine camera (pixels per millimetre: the norm of its
    first row), ``modelview`` its 4x4 modelview (depth row)."""
    shape.validate()
    n = shape.directions
    angles = np.linspace(-np.pi, np.pi, n, endpoint=False)
    unit = np.stack([np.cos(angles), np.sin(angles)], 1)
    r_face = outline_radii(face, centre, angles)
    p0, xy0 = surface_points(
        raster[0], raster[1], vertices, triangles, centre, angles, r_face - shape.inset_px
    )
    z0 = np.c_[p0, np.ones(n)] @ modelview[2]
    px_per_mm = float(np.linalg.norm(camera[0, :3]))
    r0 = np.linalg.norm(xy0 - centre, axis=1)
    turning, turning_xy = [p0], [xy0]
    for k in range(1, shape.rings + 1):
        r = r_face * (1 + shape.margin * k / shape.rings)
        xy = centre + unit * r[:, None]
        z = z0 - shape.slope * (r - r0) / px_per_mm
        turning.append(back_project(camera, modelview, xy, z))
        turning_xy.append(xy)
    static = centre + unit * (r_face * (1 + shape.static))[:, None]
    n_face = len(vertices)
    # ring 0 .. ring K turn, the blend rings follow, the static ring closes the grid
    tris = ring_triangles(n_face, shape.rings + shape.blend + 1, n)
    return HeadMesh(
        turning=np.concatenate(turning),
        turning_xy=np.concatenate(turning_xy),
        static=static,
        blend=shape.blend,
        triangles=np.concatenate([np.asarray(triangles, np.int64), tris]),
        n_face=n_face,
    )
