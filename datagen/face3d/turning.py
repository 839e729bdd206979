"""Re-rendering an aligned face at a new yaw from its Surrey Face Model fit (VividGAN's data).

A face is fitted once (``datagen.face3d.morphable.fit``) and every target yaw turns it about
the head's vertical axis under the same camera. Two renderers (``pose.method``):

- ``head`` (default): the whole picture is one mesh, the fitted face plus rings of anchors
  around it (``profiling``: face profiling after Zhu et al. 2016); it is turned and rasterised
  with a z-buffer, and every pixel is one lookup into the photo at the source pixel its surface
  point came from (``Render.source_map``). Hidden face points take their mirror image's pixel.
  Hair, ears and neck turn with the face, the background stays, nothing tears
  (``continuity`` measures it);
- ``face``: the earlier renderer, kept for comparison: the textured face mesh (our own texture
  extraction, ``render.extract_texture``) over surroundings that follow the mesh's new outline
  along rays from the face centre (``surroundings_map``); hair and background tear at the rim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from datagen.face3d import morphable, profiling, render

# The SFM's origin is near the nose tip and the face spans z -103..3 mm; a head turns about an
# axis well behind the face, roughly above the neck.
PIVOT_DEPTH_MM = 80.0
PIVOT = np.array([0.0, 0.0, -PIVOT_DEPTH_MM])
# a rendered face pixel shows the photo's own colour when its surface point is within this many
# millimetres of the nearest surface there in the photo (else it is hidden there: mirrored)
SEEN_TOLERANCE_MM = 4.0
STATIC_BEHIND_MM = 60.0
MARCH_MAX_TURN = 45.0  # degrees: far-side jaw points move onto the outline up to this turn


@dataclass
class PoseSource:
    """One face ready to be re-rendered: image, fit, and where its mesh lies in the image."""

    image: np.ndarray  # H x W x 3 uint8 (the large aligned crop)
    fit: morphable.Fit
    landmark_vertices: np.ndarray  # 68 vertex ids whose projections are the landmarks
    face: np.ndarray  # H x W bool: pixels the fitted mesh covers in ``image``
    face_centre: np.ndarray  # x, y: the centre the surroundings are laid out around
    vertices: np.ndarray  # N x 3 model space: the fitted mesh, its mouth closed (``closed_mesh``)
    triangles: np.ndarray  # T x 3
    xy: np.ndarray  # N x 2: the mesh vertices' pixels in ``image``
    z: np.ndarray  # N: their camera-space depths (larger is nearer)
    zbuffer: np.ndarray  # H x W float32: depth of the nearest surface (-inf off the face)
    raster: tuple[np.ndarray, np.ndarray]  # the mesh's ``render.rasterize`` in ``image``
    texture_size: int = 512
    # caches, made on first use (a PoseSource is not changed after ``from_fit``)
    _depth_floor: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _texture: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _heads: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def texture(self) -> np.ndarray:
        """T x T x 3 uint8 texture map, unseen texels mirrored (made on first use: only the
        ``face`` renderer reads it)."""
        if self._texture is None:
            tris = np.asarray(self.fit.mesh.tvi)  # the SFM's own mesh: its texture layout
            layout = texture_layout(self.texture_size)
            texture, seen = render.extract_texture(self.image, self.xy, self.z, tris, layout)
            self._texture = mirror_fill(texture, seen, layout[0] >= 0)
        return self._texture

    @property
    def depth_floor(self) -> np.ndarray:
        """H x W float32: the farthest of the nearest-surface depths over each pixel's 3x3
        neighbourhood (+inf off the face, so that the rim is judged by its face pixels alone)."""
        if self._depth_floor is None:
            z = np.where(self.face, self.zbuffer, np.inf).astype(np.float32)
            self._depth_floor = cv2.erode(z, np.ones((3, 3), np.uint8))
        return self._depth_floor

    def head(self, shape: profiling.HeadShape) -> profiling.HeadMesh:
        """The anchors around this face for ``shape`` (made once per shape)."""
        if shape not in self._heads:
            fit = self.fit
            self._heads[shape] = profiling.head_mesh(
                self.vertices,
                self.triangles,
                self.raster,
                self.face,
                self.face_centre,
                fit.camera(),
                np.asarray(fit.pose.get_modelview(), np.float64),
                shape,
            )
        return self._heads[shape]


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
    """A face ready to turn: where its mesh lies in ``image`` under ``fit``, its landmark
    vertices and the depth of its nearest surface per pixel."""
    h, w = image.shape[:2]
    if (w, h) != tuple(fit.image_size):
        raise ValueError(f"image is {w}x{h} but the fit is for {fit.image_size}")
    v, tris = closed_mesh(fit)
    xy, z = fit.project(v), depth(fit, v)
    raster = render.rasterize(xy, z, tris, (w, h))
    face = raster[0] >= 0  # the pixels the fitted mesh covers
    if face.sum() < 0.01 * face.size:
        raise morphable.FitRejected("fit outside the image", f"the mesh covers {face.sum()} pixels")
    zbuffer = render.interpolate(z[:, None], tris, *raster)[..., 0]
    zbuffer[~face] = -np.inf
    ys, xs = np.nonzero(face)
    return PoseSource(
        image,
        fit,
        landmark_vertices(fit),
        face,
        np.array([xs.mean(), ys.mean()]),
        v,
        tris,
        xy,
        z,
        zbuffer.astype(np.float32),
        raster,
        texture_size,
    )


def yaw_rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def turn_points(points: np.ndarray, yaw: float) -> np.ndarray:
    """Model-space points (N x 3) turned by ``yaw`` degrees about the head's vertical (model y)
    axis through ``PIVOT``."""
    return (np.asarray(points, np.float64) - PIVOT) @ yaw_rotation(yaw).T + PIVOT


def turned_vertices(fit: morphable.Fit, yaw: float) -> np.ndarray:
    """Mesh vertices turned by ``yaw`` degrees about the head's vertical (model y) axis."""
    return turn_points(np.asarray(fit.mesh.vertices, np.float64), yaw)


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
    # H x W x 2 float32: the source pixel each rendered pixel shows (NaN where it has none)
    source_map: np.ndarray
    # H x W float32: camera-space depth of the surface drawn there (NaN where none is known)
    depth: np.ndarray


METHODS = ("head", "face")


def render_yaws(
    src: PoseSource,
    yaws: list[float],
    supersample: int = 1,
    method: str = "head",
    head: profiling.HeadShape | None = None,
    feather: float = 0.03,
) -> list[Render]:
    """The face turned to each absolute yaw in ``yaws`` (degrees; the fitted yaw is taken off
    first), all poses rasterised in one batch at ``supersample`` x the source size and
    area-reduced. Landmarks are the projections of the model vertices in
    ``src.landmark_vertices``.

    ``method``: ``head`` (default) turns the whole picture as one mesh (``profiling``, shaped by
    ``head``); ``face`` is the earlier renderer: the textured face mesh over surroundings warped
    along rays, blended over ``feather`` (a share of the width)."""
    if method == "head":
        return _render_head(src, yaws, supersample, head or profiling.HeadShape())
    if method == "face":
        return _render_face(src, yaws, supersample, feather)
    raise ValueError(f"unknown turning method {method!r}: use one of {METHODS}")


@lru_cache(maxsize=1)
def mouth_loop() -> np.ndarray:
    """The SFM vertices round its mouth opening, in order: the mesh's one boundary loop besides
    its outline (the shorter one)."""
    from collections import Counter

    tris = np.asarray(morphable.load_model().model.get_shape_model().get_triangle_list())
    edges = Counter(
        tuple(sorted(e)) for t in tris for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))
    )
    nbrs: dict[int, list[int]] = {}
    for (a, b), count in edges.items():
        if count == 1:
            nbrs.setdefault(a, []).append(b)
            nbrs.setdefault(b, []).append(a)
    loops, done = [], set()
    for start in sorted(nbrs):
        if start in done:
            continue
        loop, prev, cur = [start], -1, start
        done.add(start)
        while True:
            nxt = [v for v in nbrs[cur] if v != prev and v not in done]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            done.add(cur)
        loops.append(loop)
    if len(loops) != 2:
        raise ValueError(f"expected the SFM's outline and mouth loops, found {len(loops)} loops")
    return np.asarray(min(loops, key=len))


def closed_mesh(fit: morphable.Fit) -> tuple[np.ndarray, np.ndarray]:
    """The fitted mesh with its mouth opening closed by a fan round one extra vertex (the loop's
    mean): turned, an open mouth would show the picture's unmoved pixels through the lips.
    Returns vertices (N+1 x 3, model space; the first N the fit's own) and triangles."""
    v = np.asarray(fit.mesh.vertices, np.float64)
    loop = mouth_loop()
    n = len(v)
    fan = np.stack([loop, np.roll(loop, -1), np.full(len(loop), n)], 1)
    return np.r_[v, v[loop].mean(0, keepdims=True)], np.r_[np.asarray(fit.mesh.tvi), fan]


@lru_cache(maxsize=1)
def mirror_vertices() -> np.ndarray:
    """Per SFM vertex, its mirror image across the face's midline (the SFM's texture map is
    exactly left-right symmetric, so the mirror shares its texture coordinate flipped)."""
    uv = np.asarray(morphable.load_model().model.get_texture_coordinates(), np.float64)
    flipped = np.c_[1.0 - uv[:, 0], uv[:, 1]]
    out = np.empty(len(uv), np.int64)
    for i in range(0, len(uv), 512):  # nearest texture coordinate, in blocks of 512 x N
        d = ((flipped[i : i + 512, None] - uv[None]) ** 2).sum(-1)
        out[i : i + 512] = d.argmin(1)
    return out


def _seen(src: PoseSource, xy: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Whether surface points at source pixels ``xy`` (M x 2) with depths ``z`` (M) are the
    nearest surface there, i.e. visible in the photo. The nearest surface is taken over each
    pixel's 3x3 neighbourhood (``PoseSource.depth_floor``): where the face is seen edge-on, depth
    changes fast across one pixel, and a one-pixel test would flicker between the photo and the
    mirror image from pixel to pixel."""
    h, w = src.face.shape
    px = np.clip(np.round(xy[:, 0]).astype(np.int64), 0, w - 1)
    py = np.clip(np.round(xy[:, 1]).astype(np.int64), 0, h - 1)
    inside = (xy[:, 0] > -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] > -0.5) & (xy[:, 1] < h - 0.5)
    return inside & (z >= src.depth_floor[py, px] - SEEN_TOLERANCE_MM)


def _render_head(
    src: PoseSource, yaws: list[float], k: int, shape: profiling.HeadShape
) -> list[Render]:
    fit, img = src.fit, src.image
    h, w = img.shape[:2]
    hm = src.head(shape)
    n_face, n_face_tris = hm.n_face, len(src.triangles)
    fitted = float(fit.pose.get_yaw_pitch_roll()[0])
    face_v = src.vertices
    n_dir = len(hm.static)
    xys, zs = [], []
    for y in yaws:
        turned = turn_points(np.r_[face_v, hm.turning], y - fitted)
        xy, z = fit.project(turned), depth(fit, turned)
        xys.append(np.r_[xy, hm.blend_rings(xy[-n_dir:], hm.static), hm.static])
        zs.append(z)
    # the static ring lies behind the head at any yaw (no turned point gets farther from the
    # camera than the pivot's depth less its distance from the pivot), and not far behind, so
    # that depth changes gently across the cells that stretch to it (``continuity`` tells
    # occlusion edges by their depth step); it depends on the face alone, not on the batch
    reach = np.linalg.norm(np.r_[face_v, hm.turning] - PIVOT, axis=1).max()
    far = float(depth(fit, PIVOT[None])[0]) - reach - STATIC_BEHIND_MM
    zs = [np.r_[z, hm.blend_rings(z[-n_dir:], far), np.full(n_dir, far)] for z in zs]
    xys = np.stack(xys)
    origin = np.r_[
        src.xy, hm.turning_xy, hm.blend_rings(hm.turning_xy[-n_dir:], hm.static), hm.static
    ]
    # a cell of the surroundings that the turn flips over (the far side of the head rolling
    # away) shows its back: it is not drawn, so the cells still facing the camera show instead
    # of a fold of alternating strips
    keep = np.ones((len(yaws), len(hm.triangles)), bool)
    ring = np.arange(len(hm.triangles)) >= n_face_tris
    before = signed_areas(origin, hm.triangles[ring])
    facing = np.sign(np.median(before))  # the grid's orientation; a cell folded in the photo
    for i, xy in enumerate(xys):  # (a concave outline) is left out too
        keep[i, ring] = (before * facing > 0) & (signed_areas(xy, hm.triangles[ring]) * facing > 0)
    tri_ids, barys = render.rasterize_batch(
        (xys + 0.5) * k - 0.5, np.stack(zs), hm.triangles, (w * k, h * k), draw=keep
    )
    sfm_mirror = mirror_vertices()
    mirror = np.r_[sfm_mirror, np.arange(len(sfm_mirror), n_face)]  # the mouth's centre: itself
    # per vertex: its source pixel, its depth in this pose (filled in per yaw), and for face
    # vertices its source depth and its mirror image's source pixel and depth (zeros elsewhere:
    # unused off the face)
    pad = np.zeros(len(origin) - n_face)
    values = np.c_[
        origin,
        np.zeros(len(origin)),
        np.r_[src.z, pad],
        np.r_[np.c_[src.xy[mirror], src.z[mirror]], np.zeros((len(pad), 3))],
    ].astype(np.float32)  # V x 7
    gy, gx = np.mgrid[0 : h * k, 0 : w * k].astype(np.float32)
    identity = np.stack([(gx + 0.5) / k - 0.5, (gy + 0.5) / k - 0.5], -1)
    out = []
    for yaw, xy, z_all, tri_id, bary in zip(yaws, xys, zs, tri_ids, barys, strict=True):
        drawn = tri_id >= 0
        on_face = drawn & (tri_id < n_face_tris)
        values[:, 2] = z_all
        at = render.interpolate_at(values, hm.triangles, tri_id[drawn], bary[drawn])
        smap = identity.copy()  # beyond the static ring nothing moves
        smap[drawn] = at[:, :2]
        zmap = np.full(drawn.shape, np.nan, np.float32)
        zmap[drawn] = at[:, 2]
        # a face point the photo does not show takes its mirror image's colour; where the photo
        # shows neither (inside the lips, under the nose tip), it keeps its own source pixel:
        # the surface in front of it there, of much the same colour, and no seam
        face_at = at[on_face[drawn]]
        hidden = ~_seen(src, face_at[:, :2], face_at[:, 3])
        use_mirror = hidden & _seen(src, face_at[:, 4:6], face_at[:, 6])
        fy, fx = np.nonzero(on_face)
        smap[fy[use_mirror], fx[use_mirror]] = face_at[use_mirror, 4:6]
        image = cv2.remap(
            img, smap[..., 0], smap[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        cover = on_face.astype(np.float32)
        if k > 1:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            cover = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
            smap, zmap = _reduce_map(smap, k), _reduce_map(zmap, k)
        lm = jaw_on_outline(xy[src.landmark_vertices], cover > 0.5, yaw - fitted)
        out.append(
            Render(
                image,
                lm.astype(np.float32),
                cover > 0.5,
                float(yaw),
                smap,
                zmap,
            )
        )
    return out


def jaw_on_outline(landmarks: np.ndarray, face: np.ndarray, turn: float) -> np.ndarray:
    """The 68 projected landmarks with the far side's jaw points (1-8 or 10-17, 1-based) moved
    along their rows onto the face's outline, as the iBUG markup (and dlib) place them: turned
    away, the model vertex behind a jaw point is hidden by the cheek in front of it. Only for
    turns up to ``MARCH_MAX_TURN``: beyond, the far cheek is hidden behind the profile, and the
    outline is the nose's and the lips'. ``face``:
    the render's face pixels (H x W bool); ``turn``: degrees turned (positive: nose to the
    image's right, so the image's right side turns away)."""
    out = np.array(landmarks, np.float64, copy=True)
    if abs(turn) < 1e-6 or abs(turn) > MARCH_MAX_TURN:
        return out
    far = range(9, 17) if turn > 0 else range(0, 8)
    h = face.shape[0]
    # where the outline on a row is the profile of the nose or lips (within a tenth of the eye
    # corners' distance of the inner landmarks' farthest reach), it is not the jaw's: the point
    # stays
    inner = out[17:, 0]
    margin = 0.1 * float(np.linalg.norm(out[45] - out[36]))
    for i in far:
        row = face[int(np.clip(round(out[i, 1]), 0, h - 1))]
        xs = np.nonzero(row)[0]
        if len(xs):
            edge = xs.max() if turn > 0 else xs.min()
            if (edge >= inner.max() - margin) if turn > 0 else (edge <= inner.min() + margin):
                continue
            # only ever outwards: a point already on or beyond the outline stays
            out[i, 0] = max(out[i, 0], edge) if turn > 0 else min(out[i, 0], edge)
    return out


def _reduce_map(m: np.ndarray, k: int) -> np.ndarray:
    """A per-pixel map rendered at ``k`` x the size, averaged over each k x k block (as the image
    is area-reduced); a block with any NaN is NaN."""
    h, w = m.shape[0] // k, m.shape[1] // k
    blocks = m[: h * k, : w * k].reshape(h, k, w, k, *m.shape[2:])
    return blocks.mean(axis=(1, 3)).astype(np.float32)


def signed_areas(xy: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle of ``tris`` with vertices at ``xy`` (N x 2)."""
    a, b, c = (xy[tris[:, i]] for i in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _render_face(src: PoseSource, yaws: list[float], k: int, feather: float) -> list[Render]:
    fit, img = src.fit, src.image
    h, w = img.shape[:2]
    tvi = np.asarray(fit.mesh.tvi)
    fitted = float(fit.pose.get_yaw_pitch_roll()[0])
    verts = [turned_vertices(fit, y - fitted) for y in yaws]
    xys = np.stack([fit.project(v) for v in verts])
    zs = np.stack([depth(fit, v) for v in verts])
    tri_ids, barys = render.rasterize_batch((xys + 0.5) * k - 0.5, zs, tvi, (w * k, h * k))
    centre = src.face_centre
    uv_per_vertex = np.asarray(fit.mesh.texcoords)
    out = []
    for yaw, xy, z, tri_id, bary in zip(yaws, xys, zs, tri_ids, barys, strict=True):
        drawn = tri_id >= 0
        uv = render.interpolate(uv_per_vertex, tvi, tri_id, bary)
        # the surroundings are a flat warp with no depth: NaN
        zmap = np.where(drawn, render.interpolate(z[:, None], tvi, tri_id, bary)[..., 0], np.nan)
        face = render.sample_texture(src.texture, uv, drawn)
        cover = drawn.astype(np.float32)
        # where each face pixel's surface point lies in the photo (the texture may have taken a
        # hidden point's colour from its mirror image; the map does not follow that)
        face_map = render.interpolate(src.xy, tvi, tri_id, bary).astype(np.float32)
        if k > 1:
            face = cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)
            cover = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
            face_map, zmap = _reduce_map(face_map, k), _reduce_map(zmap, k)
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
        smap = np.where((cover > 0.5)[..., None], face_map, np.stack([mx, my], -1))
        out.append(
            Render(
                composite.round().astype(np.uint8),
                xy[src.landmark_vertices].astype(np.float32),
                cover > 0.5,
                float(yaw),
                smap,
                np.where(cover > 0.5, zmap, np.nan).astype(np.float32),
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
