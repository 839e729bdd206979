import numpy as np
import pytest

from datagen.face3d import profiling, turning


@pytest.fixture(scope="module")
def source(aligned_face):
    return turning.prepare(*aligned_face)


def test_back_projection_lands_on_the_pixel_at_the_depth(source):
    fit = source.fit
    cam, mv = fit.camera(), np.asarray(fit.pose.get_modelview(), np.float64)
    xy = np.array([[10.0, 20.0], [128.0, 128.0], [250.0, 3.0]])
    z = np.array([-50.0, 0.0, 30.0])
    p = profiling.back_project(cam, mv, xy, z)
    assert np.abs(fit.project(p) - xy).max() < 1e-6
    assert np.abs(turning.depth(fit, p) - z).max() < 1e-6


def test_ring_triangles_tile_a_polar_grid():
    t = profiling.ring_triangles(10, 2, 8)
    assert t.shape == (2 * 2 * 8, 3) and t.min() == 10 and t.max() == 10 + 3 * 8 - 1
    edges = {tuple(sorted(e)) for tri in t for e in ((tri[0], tri[1]), (tri[1], tri[2]))}
    assert (10, 11) in edges and (17, 10) in {(max(e), min(e)) for e in edges}  # closes the ring


def test_head_rings_fall_behind_the_face_rim_and_the_static_ring_is_outside(source):
    shape = profiling.HeadShape()
    hm = source.head(shape)
    n = shape.directions
    rings = hm.turning.reshape(shape.rings + 1, n, 3)
    z = np.stack([turning.depth(source.fit, r) for r in rings])
    assert (np.diff(z, axis=0) < 0).all()  # each ring lies behind the one inside it
    c = source.face_centre
    r_last = np.linalg.norm(hm.turning_xy[-n:] - c, axis=1)
    r_static = np.linalg.norm(hm.static - c, axis=1)
    assert (r_static > r_last).all()
    # ring 0 lies on the face
    xy0 = np.round(hm.turning_xy[:n]).astype(int)
    assert source.face[xy0[:, 1], xy0[:, 0]].all()


def test_blend_rings_space_evenly():
    hm = profiling.HeadMesh(
        turning=np.zeros((0, 3)),
        turning_xy=np.zeros((0, 2)),
        static=np.array([[4.0, 0.0]]),
        blend=3,
        triangles=np.zeros((0, 3), np.int64),
        n_face=0,
    )
    got = hm.blend_rings(np.array([[0.0, 0.0]]), hm.static)
    assert np.allclose(got[:, 0], [1, 2, 3])


def test_bad_head_shapes_are_errors():
    with pytest.raises(ValueError, match="margin"):
        profiling.HeadShape.from_params({"margin": 0.8, "static": 0.5})
    with pytest.raises(ValueError, match="directions"):
        profiling.HeadShape.from_params({"directions": 4})
