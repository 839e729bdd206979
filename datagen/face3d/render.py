"""Our own software renderer for textured triangle meshes: vectorised numpy rasterisation with a
z-buffer and barycentric texture sampling. No OpenGL, no display.

The SFM camera eos fits is scaled-orthographic, so screen-space barycentric interpolation is
exact (there is no perspective division to correct for).
"""

from __future__ import annotations

import cv2
import numpy as np

# Triangles are grouped by the width and the height of their screen box and each group is tested
# against a kx x ky candidate grid with kx, ky the group's largest (1, 2, 4, ... px); boxes
# larger than this are rasterised one by one (there are few of them at face sizes up to ~512 px).
_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
_BLOCK = 1 << 18


def _fragments(
    xy: np.ndarray,
    z: np.ndarray,
    tris: np.ndarray,
    ids: np.ndarray,
    kx: int,
    ky: int,
    w: int,
    band: np.ndarray,
    h: int,
):
    """Candidate pixels of triangles ``ids`` on a (kx+1) x (ky+1) grid from each box corner;
    returns the covered ones as (pixel index, triangle id, barycentrics, depth). Rows of
    triangle t are limited to ``[band[t] * h, band[t] * h + h)`` (its image in a batch)."""
    a, b, c = (xy[tris[ids, i]] for i in range(3))
    x0 = np.floor(np.minimum(np.minimum(a[:, 0], b[:, 0]), c[:, 0])).astype(np.int64)
    y0 = np.floor(np.minimum(np.minimum(a[:, 1], b[:, 1]), c[:, 1])).astype(np.int64)
    oy, ox = np.mgrid[0 : ky + 1, 0 : kx + 1]
    px = x0[:, None] + ox.ravel()[None]  # T x (kx+1)(ky+1)
    py = y0[:, None] + oy.ravel()[None]
    den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)[:, None]
    dx = px - c[:, 0:1]
    dy = py - c[:, 1:2]
    l0 = ((b[:, 1] - c[:, 1])[:, None] * dx + (c[:, 0] - b[:, 0])[:, None] * dy) / den
    l1 = ((c[:, 1] - a[:, 1])[:, None] * dx + (a[:, 0] - c[:, 0])[:, None] * dy) / den
    l2 = 1.0 - l0 - l1
    eps = -1e-7
    lo = (band[ids] * h)[:, None]
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps) & ok[:, None]
    inside &= (px >= 0) & (px < w) & (py >= lo) & (py < lo + h)
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
    tri_id, bary = rasterize_batch(np.asarray(xy)[None], np.asarray(z)[None], tris, size)
    return tri_id[0], bary[0]


def rasterize_batch(
    xy: np.ndarray,
    z: np.ndarray,
    tris: np.ndarray,
    size: tuple[int, int],
    draw: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``rasterize`` for B poses of one mesh at once (``xy`` B x N x 2, ``z`` B x N): the images
    are stacked into one tall frame so that every triangle of every pose goes through the same
    vectorised passes. ``draw`` (B x T bool): the triangles drawn in each pose (all by default).
    Returns B x H x W ``tri_id`` (ids into ``tris``) and B x H x W x 3 ``bary``.
    """
    w, h = size
    xy = np.asarray(xy, np.float64)
    n_img, n_vert = xy.shape[:2]
    tris = np.asarray(tris, np.int64)
    n_tri = len(tris)
    # pose b's vertices become vertices b*N.., drawn b*h rows lower
    flat_xy = (xy + np.stack([np.zeros(n_img), np.arange(n_img) * h], 1)[:, None, :]).reshape(-1, 2)
    flat_z = np.asarray(z, np.float64).reshape(-1)
    flat_tris = (tris[None] + (np.arange(n_img) * n_vert)[:, None, None]).reshape(-1, 3)
    band = np.repeat(np.arange(n_img), n_tri)
    corners = flat_xy[flat_tris]  # BT x 3 x 2
    lo_c, hi_c = corners.min(1), corners.max(1)
    extent = np.ceil(hi_c - np.floor(lo_c)).astype(np.int64)  # box width, height
    top = band * h
    on_screen = (hi_c[:, 0] >= 0) & (lo_c[:, 0] < w) & (hi_c[:, 1] >= top) & (lo_c[:, 1] < top + h)
    if draw is not None:
        on_screen &= np.asarray(draw, bool).reshape(-1)
    parts = []
    # buckets by box width and height apart: a long thin triangle tests a long thin grid
    bx = np.searchsorted(_BUCKETS, extent[:, 0])  # == len(_BUCKETS): too big for any bucket
    by = np.searchsorted(_BUCKETS, extent[:, 1])
    big = (bx == len(_BUCKETS)) | (by == len(_BUCKETS))
    for i, kx in enumerate(_BUCKETS):
        for j, ky in enumerate(_BUCKETS):
            ids = np.nonzero(on_screen & ~big & (bx == i) & (by == j))[0]
            # blocks of about _BLOCK candidate pixels keep the temporaries in cache
            step = max(1, _BLOCK // ((kx + 1) * (ky + 1)))
            for a in range(0, len(ids), step):
                part = ids[a : a + step]
                parts.append(_fragments(flat_xy, flat_z, flat_tris, part, kx, ky, w, band, h))
    for t in np.nonzero(on_screen & big)[0]:
        ex, ey = (int(e) for e in extent[t])
        parts.append(_fragments(flat_xy, flat_z, flat_tris, np.array([t]), ex, ey, w, band, h))
    tri_id = np.full(n_img * h * w, -1, np.int32)
    bary = np.zeros((n_img * h * w, 3), np.float32)
    if parts:
        pix, tri, bc, depth = (np.concatenate(p) for p in zip(*parts, strict=True))
        # z-buffer: per pixel keep the nearest fragment; ties go to the lower triangle id, so
        # the result does not depend on the order of the fragments
        zbuf = np.full(n_img * h * w, -np.inf)
        np.maximum.at(zbuf, pix, depth)
        near = depth == zbuf[pix]
        first = np.full(n_img * h * w, np.iinfo(np.int64).max)
        np.minimum.at(first, pix[near], tri[near])
        keep = near & (tri == first[pix])  # one fragment per pixel: a triangle covers it once
        tri_id[pix[keep]] = tri[keep] % n_tri
        bary[pix[keep]] = bc[keep]
    return tri_id.reshape(n_img, h, w), bary.reshape(n_img, h, w, 3)


def interpolate(
    values: np.ndarray, tris: np.ndarray, tri_id: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Per-vertex ``values`` (N x C) interpolated at every drawn pixel (H x W x C; 0 elsewhere)."""
    vals = np.asarray(values, np.float64)
    drawn = tri_id >= 0
    out = np.zeros((*tri_id.shape, vals.shape[1]), np.float64)
    out[drawn] = interpolate_at(vals, np.asarray(tris), tri_id[drawn], bary[drawn])
    return out


def interpolate_at(
    values: np.ndarray, tris: np.ndarray, tri_id: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Per-vertex ``values`` (N x C) at M points given by their triangle ids (M) and
    barycentrics (M x 3) -> M x C, in ``values``' dtype (float32 halves the cost)."""
    corners = tris[tri_id]
    out = values[corners[:, 0]] * bary[:, 0:1]
    out += values[corners[:, 1]] * bary[:, 1:2]
    out += values[corners[:, 2]] * bary[:, 2:3]
    return out


def sample_texture(texture: np.ndarray, uv: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup at ``uv`` in [0, 1] (texture pixel = uv * size - 0.5)."""
    th, tw = texture.shape[:2]
    mx = (uv[..., 0] * tw - 0.5).astype(np.float32)
    my = (uv[..., 1] * th - 0.5).astype(np.float32)
    out = cv2.remap(texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[~drawn] = 0
    return out


def uv_layout(uv: np.ndarray, tris: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle (and where in it) every texel of a ``size`` x ``size`` texture map belongs
    to, for per-vertex texture coordinates ``uv`` in [0, 1] (texel centre = uv * size - 0.5)."""
    xy = np.asarray(uv, np.float64) * size - 0.5
    tri_id, bary = rasterize(xy, np.zeros(len(xy)), tris, (size, size))
    return tri_id, bary


def extract_texture(
    image: np.ndarray,
    xy: np.ndarray,
    z: np.ndarray,
    tris: np.ndarray,
    layout: tuple[np.ndarray, np.ndarray],
    tolerance: float = 2.0,
    raster: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The texture map of a mesh seen in ``image``: every texel of ``layout`` (``uv_layout``)
    takes the image colour where its surface point projects (bilinear), if that point is the
    nearest surface there (within ``tolerance`` depth units). ``raster``: the mesh's
    ``rasterize`` in ``image``, when the caller has it already. Returns the texture (S x S x 3
    uint8) and the texels seen (S x S bool)."""
    h, w = image.shape[:2]
    tex_tri, tex_bary = layout
    pos = interpolate(xy, tris, tex_tri, tex_bary)  # S x S x 2 image pixels
    tex_z = interpolate(np.asarray(z)[:, None], tris, tex_tri, tex_bary)[..., 0]
    img_tri, img_bary = raster if raster is not None else rasterize(xy, z, tris, (w, h))
    zbuf = interpolate(np.asarray(z)[:, None], tris, img_tri, img_bary)[..., 0]
    px = np.clip(np.round(pos[..., 0]).astype(np.int64), 0, w - 1)
    py = np.clip(np.round(pos[..., 1]).astype(np.int64), 0, h - 1)
    inside = (pos[..., 0] > -0.5) & (pos[..., 0] < w - 0.5)
    inside &= (pos[..., 1] > -0.5) & (pos[..., 1] < h - 0.5)
    seen = (tex_tri >= 0) & inside & (img_tri[py, px] >= 0)
    # the nearest surface over the pixel's 3x3 neighbourhood: where the surface is seen edge-on,
    # depth changes fast across one pixel and a single-pixel test would flicker from texel to
    # texel (stripes once the face is turned)
    zmin = cv2.erode(np.where(img_tri >= 0, zbuf, np.inf).astype(np.float32), np.ones((3, 3)))
    seen &= tex_z >= zmin[py, px] - tolerance
    texture = cv2.remap(
        image,
        pos[..., 0].astype(np.float32),
        pos[..., 1].astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    texture[~seen] = 0
    return texture, seen
