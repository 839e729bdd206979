import numpy as np

from datagen.face3d import continuity


def grid(h=40, w=50):
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    return gx, gy


def test_a_smooth_warp_has_no_jumps_even_where_it_squeezes():
    gx, gy = grid()
    # a smooth bend, and a region squeezed 3x (3 source pixels per pixel): foreshortening
    mx = gx + 4 * np.sin(gy / 7) + np.where(gx > 30, 2 * (gx - 30), 0) ** 1.0
    my = gy + 3 * np.cos(gx / 9)
    m = np.stack([mx, my], -1)
    assert continuity.jump_mask(m).sum() == 0
    assert continuity.tear_fraction(m, np.zeros(gx.shape)) == 0


def test_a_planted_tear_is_flagged_on_both_sides_and_nowhere_else():
    gx, gy = grid()
    mx = gx + np.where(gx >= 25, 6.0, 0.0)  # columns 24 | 25 come from 7 px apart
    m = np.stack([mx, gy], -1)
    mask = continuity.tear_mask(m, np.zeros(gx.shape))
    assert mask[:, 24].all() and mask[:, 25].all()
    assert mask.sum() == 2 * gx.shape[0]
    assert continuity.tear_fraction(m, np.zeros(gx.shape)) == 2 / gx.shape[1]


def test_a_jump_across_a_depth_step_is_an_occlusion_not_a_tear():
    gx, gy = grid()
    m = np.stack([gx + np.where(gx >= 25, 6.0, 0.0), gy], -1)
    z = np.where(gx >= 25, -40.0, 0.0)  # the right part lies 40 mm behind: occluded edge
    assert continuity.jump_mask(m)[:, 24].all()
    assert continuity.tear_mask(m, z).sum() == 0
    # unknown depth (a flat warp) proves nothing: still a tear
    assert continuity.tear_mask(m, np.full(gx.shape, np.nan))[:, 24].all()


def test_pixels_without_a_source_are_tears():
    gx, gy = grid()
    m = np.stack([gx, gy], -1)
    m[10:12, 10:13] = np.nan
    mask = continuity.tear_mask(m, np.zeros(gx.shape))
    assert mask[10:12, 10:13].all() and mask.sum() == 6


def test_mark_paints_only_the_flagged_pixels():
    img = np.zeros((4, 4, 3), np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    out = continuity.mark(img, mask)
    assert (out[1, 2] == (255, 0, 255)).all() and out.sum() == 255 * 2
