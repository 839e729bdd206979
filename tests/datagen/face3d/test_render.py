import eos
import numpy as np

from datagen.face3d import morphable, render


def test_a_triangle_covers_the_pixels_inside_it():
    xy = np.array([[2.0, 2.0], [12.0, 2.0], [2.0, 12.0]])
    tri_id, bary = render.rasterize(xy, np.zeros(3), np.array([[0, 1, 2]]), (16, 16))
    ys, xs = np.nonzero(tri_id == 0)
    assert ((xs >= 2) & (ys >= 2) & (xs + ys <= 14)).all()
    assert len(xs) == sum(1 for y in range(2, 13) for x in range(2, 13) if x + y <= 14)
    assert np.allclose(bary[tri_id == 0].sum(1), 1.0, atol=1e-6)
    assert np.allclose(bary[2, 2], [1, 0, 0], atol=1e-6)  # pixel (2, 2) is vertex 0


def test_z_buffer_keeps_the_nearer_triangle_whatever_the_order():
    xy = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]] * 2)
    z = np.array([1.0, 1.0, 1.0, 5.0, 5.0, 5.0])  # the second copy is nearer
    for tris in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        tri_id, _ = render.rasterize(xy, z, tris, (24, 24))
        near = int(np.nonzero((tris == [3, 4, 5]).all(1))[0][0])
        assert (tri_id[tri_id >= 0] == near).all()


def test_large_triangles_take_the_slow_path_and_agree():
    xy = np.array([[1.0, 1.0], [60.0, 3.0], [5.0, 58.0]])
    tri_id, _ = render.rasterize(xy, np.zeros(3), np.array([[0, 1, 2]]), (64, 64))
    area = 0.5 * abs((60 - 1) * (58 - 1) - (5 - 1) * (3 - 1))
    assert abs((tri_id == 0).sum() - area) < 0.05 * area


def test_render_at_the_fitted_pose_reproduces_the_face(aligned_face):
    img, lm = aligned_face
    f = morphable.fit(lm, (256, 256))
    texture = np.asarray(
        eos.render.extract_texture(
            f.mesh, f.pose, np.dstack([img, np.full((256, 256), 255, np.uint8)]), 512
        )
    )
    verts = np.asarray(f.mesh.vertices, np.float64)
    tris = np.asarray(f.mesh.tvi)
    z = (np.c_[verts, np.ones(len(verts))] @ np.asarray(f.pose.get_modelview()).T)[:, 2]
    tri_id, bary = render.rasterize(f.project(verts), z, tris, (256, 256))
    drawn = tri_id >= 0
    assert 0.3 < drawn.mean() < 0.8
    uv = render.interpolate(np.asarray(f.mesh.texcoords), tris, tri_id, bary)
    out = render.sample_texture(np.ascontiguousarray(texture[..., :3]), uv, drawn)
    mse = ((out[drawn].astype(float) - img[drawn].astype(float)) ** 2).mean()
    psnr = 10 * np.log10(255**2 / mse)
    print(f"yaw-0 re-render PSNR inside the face: {psnr:.1f} dB")
    assert psnr > 30


def test_draw_leaves_out_the_triangles_of_a_pose():
    xy = np.array([[[2.0, 2.0], [20.0, 2.0], [2.0, 20.0], [20.0, 20.0]]] * 2)
    z = np.zeros((2, 4))
    tris = np.array([[0, 1, 2], [1, 3, 2]])
    draw = np.array([[True, True], [True, False]])
    tri_id, _ = render.rasterize_batch(xy, z, tris, (24, 24), draw=draw)
    assert set(np.unique(tri_id[0])) == {-1, 0, 1}
    assert set(np.unique(tri_id[1])) == {-1, 0}  # the second pose drew only the first triangle


def test_long_thin_triangles_rasterise_like_small_ones():
    """Boxes are bucketed by width and height apart: a 200 x 2 px sliver covers the pixels its
    edges enclose, as a brute-force test of every pixel says."""
    xy = np.array([[3.2, 5.1], [203.7, 6.9], [4.0, 7.8]])
    tri_id, bary = render.rasterize(xy, np.zeros(3), np.array([[0, 1, 2]]), (220, 16))
    gy, gx = np.mgrid[0:16, 0:220].astype(float)
    a, b, c = xy

    def side(p, q):
        return (q[0] - p[0]) * (gy - p[1]) - (q[1] - p[1]) * (gx - p[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    assert inside.sum() > 150 and ((tri_id == 0) == inside).mean() > 0.995
