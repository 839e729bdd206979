"""Our own software renderer for textured triangle meshes: vectorised numpy rasterisation with a
z-buffer and barycentric texture sampling. No OpenGL, no display.

The SFM camera eos fits is scaled-orthographic, so screen-space barycentric interpolation is
exact (there is no perspective division to correct for).
"""

from __future__ import annotations

import cv2
import numpy as np

# Triangles whose screen box is wider than this many pixels are rasterised one by one; the rest
# (nearly all of them, at face sizes up to ~512 px) go through one vectorised pass.
_BATCH_EXTENT = 12


def _fragments(
    xy: np.ndarray, z: np.ndarray, tris: np.ndarray, ids: np.ndarray, k: int, w: int, h: int
):
    """Candidate pixels of triangles ``ids`` on a k x k grid from each box corner; returns the
    covered ones as (pixel index, triangle id, barycentrics, depth)."""
    a, b, c = (xy[tris[ids, i]] for i in range(3))
    x0 = np.floor(np.minimum(np.minimum(a[:, 0], b[:, 0]), c[:, 0])).astype(np.int64)
    y0 = np.floor(np.minimum(np.minimum(a[:, 1], b[:, 1]), c[:, 1])).astype(np.int64)
    oy, ox = np.mgrid[0 : k + 1, 0 : k + 1]
    px = x0[:, None] + ox.ravel()[None]  # T x (k+1)^2
    py = y0[:, None] + oy.ravel()[None]
    den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)[:, None]
    l0 = (
        (b[:, 1] - c[:, 1])[:, None] * (px - c[:, 0:1])
        + (c[:, 0] - b[:, 0])[:, None] * (py - c[:, 1:2])
    ) / den
    l1 = (
        (c[:, 1] - a[:, 1])[:, None] * (px - c[:, 0:1])
        + (a[:, 0] - c[:, 0])[:, None] * (py - c[:, 1:2])
    ) / den
    l2 = 1.0 - l0 - l1
    eps = -1e-7
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps) & ok[:, None]
    inside &= (px >= 0) & (px < w) & (py >= 0) & (py < h)
    t_idx, f_idx = np.nonzero(inside)
    tri = ids[t_idx]
    bary = np.stack([l0[t_idx, f_idx], l1[t_idx, f_idx], l2[t_idx, f_idx]], 1)
    depth = (bary * z[tris[tri]]).sum(1)
    return py[t_idx, f_idx] * w + px[t_idx, f_idx], tri, bary, depth


def rasterize(
    xy: np.ndarray, z: np.ndarray, tris: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Visible triangle and barycentrics per pixel.

    ``xy``: N x 2 screen positions (pixel centres at integers), ``z``: N depths (larger is
    nearer), ``tris``: T x 3 vertex indices, ``size``: (width, height). Returns ``tri_id``
    (H x W int32, -1 where nothing is drawn) and ``bary`` (H x W x 3 float32).
    """
    w, h = size
    xy = np.asarray(xy, np.float64)
    z = np.asarray(z, np.float64)
    tris = np.asarray(tris, np.int64)
    corners = xy[tris]  # T x 3 x 2
    extent = np.ceil(corners.max(1) - np.floor(corners.min(1))).max(1).astype(np.int64)
    on_screen = (
        (corners.max(1) >= 0).all(1) & (corners.min(1)[:, 0] < w) & (corners.min(1)[:, 1] < h)
    )
    small = np.nonzero(on_screen & (extent <= _BATCH_EXTENT))[0]
    parts = (
        [_fragments(xy, z, tris, small, int(extent[small].max(initial=0)), w, h)]
        if len(small)
        else []
    )
    for t in np.nonzero(on_screen & (extent > _BATCH_EXTENT))[0]:
        parts.append(_fragments(xy, z, tris, np.array([t]), int(extent[t]), w, h))
    tri_id = np.full(h * w, -1, np.int32)
    bary = np.zeros((h * w, 3), np.float32)
    if parts:
        pix, tri, bc, depth = (np.concatenate(p) for p in zip(*parts, strict=True))
        # z-buffer: per pixel keep the nearest fragment (ties: the lower triangle id, for
        # determinism)
        order = np.lexsort((-tri, depth, pix))
        last = np.r_[pix[order][1:] != pix[order][:-1], True]
        keep = order[last]
        tri_id[pix[keep]] = tri[keep]
        bary[pix[keep]] = bc[keep]
    return tri_id.reshape(h, w), bary.reshape(h, w, 3)


def interpolate(
    values: np.ndarray, tris: np.ndarray, tri_id: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Per-vertex ``values`` (N x C) interpolated at every drawn pixel (H x W x C; 0 elsewhere)."""
    vals = np.asarray(values, np.float64)
    drawn = tri_id >= 0
    out = np.zeros((*tri_id.shape, vals.shape[1]), np.float64)
    corner = vals[np.asarray(tris)[tri_id[drawn]]]  # M x 3 x C
    out[drawn] = (corner * bary[drawn][..., None]).sum(1)
    return out


def sample_texture(texture: np.ndarray, uv: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup at ``uv`` in [0, 1] (texture pixel = uv * size - 0.5)."""
    th, tw = texture.shape[:2]
    mx = (uv[..., 0] * tw - 0.5).astype(np.float32)
    my = (uv[..., 1] * th - 0.5).astype(np.float32)
    out = cv2.remap(texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[~drawn] = 0
    return out
