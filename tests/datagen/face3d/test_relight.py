import cv2
import numpy as np
import pytest

from datagen.face3d import morphable, relight
from datagen.face3d.relight import RelightParams


@pytest.fixture(scope="module")
def face(aligned_face):
    """The 256 px face, its 128 px resize and the fit made at 256 (used for both)."""
    image, landmarks = aligned_face
    small = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA)
    return {256: image, 128: small}, morphable.fit(landmarks, (256, 256)), landmarks


SIZES = [256, 128]


def light(azimuth, elevation, ambient=0.05, exposure=1.0):
    return {"azimuth": azimuth, "elevation": elevation, "ambient": ambient, "exposure": exposure}


def luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ [0.299, 0.587, 0.114]


def grey_shading(fit, size, lt, shadows):
    """``relight.shading`` of a white light: one gain, the same in every channel."""
    gain, mask = relight.shading(fit, size, lt, shadows)
    assert gain.shape == (size, size, 3)
    assert np.array_equal(gain[..., 0], gain[..., 1]) and np.array_equal(gain[..., 1], gain[..., 2])
    return gain[..., 1], mask


def seed_with(p: RelightParams, want) -> int:
    """A seed whose light (drawn first by ``relight``) satisfies ``want``."""
    for seed in range(1000):
        if want(relight.random_light(np.random.default_rng(seed), p)):
            return seed
    raise AssertionError("no such seed")


def test_light_direction_axes():
    assert np.allclose(relight.light_direction(0, 0), [0, 0, 1])  # from the camera
    assert np.allclose(relight.light_direction(90, 0), [1, 0, 0])  # from the image's right
    assert np.allclose(relight.light_direction(0, 90), [0, 1, 0])  # from above
    assert np.isclose(np.linalg.norm(relight.light_direction(-37, 21)), 1)


@pytest.mark.parametrize("size", SIZES)
def test_full_ambient_at_unit_exposure_returns_the_input(face, size):
    images, fit, _ = face
    p = RelightParams(ambient=(1.0, 1.0), exposure=(1.0, 1.0))
    out, meta = relight.relight(images[size], fit, np.random.default_rng(3), p)
    diff = np.abs(out.astype(int) - images[size])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert meta["ambient"] == 1.0 and meta["exposure"] == 1.0


@pytest.mark.parametrize("size", SIZES)
def test_side_light_brightens_its_own_side_of_the_face(face, size):
    images, fit, landmarks = face
    image = images[size]
    nose_x = landmarks[27:31, 0].mean() * size / 256  # the nose bridge splits the face
    halves = {}
    for azimuth in (70, -70):
        shade, mask = grey_shading(fit, size, light(azimuth, 0), shadows=False)
        out = luma(relight.apply_shading(image, shade))
        xs = np.arange(size)[None, :].repeat(size, 0)
        left, right = mask & (xs < nose_x - 0.1 * size), mask & (xs > nose_x + 0.1 * size)
        # relative to the photo, so that its own light cannot decide the test
        halves[azimuth] = (
            out[left].mean() / luma(image)[left].mean(),
            out[right].mean() / luma(image)[right].mean(),
        )
        assert left.sum() > 0.1 * mask.sum() and right.sum() > 0.1 * mask.sum()
    print(f"{size}px left/right gain: +70 {halves[70]}, -70 {halves[-70]}")
    assert halves[70][1] > 1.5 * halves[70][0]
    assert halves[-70][0] > 1.5 * halves[-70][1]


@pytest.mark.parametrize("size", SIZES)
def test_grazing_light_casts_the_nose_shadow_onto_the_far_cheek(face, size):
    images, fit, landmarks = face
    lit = light(50, 25)
    with_shadows, mask = grey_shading(fit, size, lit, shadows=True)
    without, _ = grey_shading(fit, size, lit, shadows=False)
    darker = mask & (with_shadows < without - 0.02)
    assert darker.sum() > 0.01 * mask.sum()
    assert (with_shadows <= without + 1e-6).all()  # shadows only ever take light away
    # the biggest patch lies beside the nose, on the side away from the light (image left)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(darker.astype(np.uint8))
    biggest = 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])
    nose = landmarks[30] * size / 256
    eye_dist = morphable.eye_distance(landmarks) * size / 256
    cx, cy = centres[biggest]
    print(f"{size}px: {darker.sum()} darker px, patch at ({cx:.0f}, {cy:.0f}), nose tip {nose}")
    assert cx < nose[0] and np.hypot(cx - nose[0], cy - nose[1]) < 0.6 * eye_dist


@pytest.mark.parametrize("size", SIZES)
def test_shadow_fraction_is_zero_under_frontal_light_and_not_under_side_light(face, size):
    images, fit, _ = face
    frontal = RelightParams(azimuth=(0, 0), elevation=(0, 0))
    _, meta = relight.relight(images[size], fit, np.random.default_rng(0), frontal)
    assert meta["azimuth"] == 0 and meta["shadow_fraction"] < 0.002

    side = RelightParams(azimuth=(0, 80), elevation=(-30, 30))
    seed = seed_with(side, lambda lt: abs(lt["azimuth"]) > 50)
    _, meta = relight.relight(images[size], fit, np.random.default_rng(seed), side)
    assert meta["shadow_fraction"] > 0.005
    _, meta = relight.relight(
        images[size],
        fit,
        np.random.default_rng(seed),
        RelightParams((0, 80), (-30, 30), shadows=False),
    )
    assert meta["shadow_fraction"] == 0


@pytest.mark.parametrize("size", SIZES)
def test_same_seed_same_bytes_other_seed_other_image(face, size):
    images, fit, _ = face
    p = RelightParams()
    a, meta_a = relight.relight(images[size], fit, np.random.default_rng(7), p)
    b, meta_b = relight.relight(images[size], fit, np.random.default_rng(7), p)
    c, meta_c = relight.relight(images[size], fit, np.random.default_rng(8), p)
    assert meta_c["azimuth"] != meta_a["azimuth"]
    assert a.shape == images[size].shape and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes() and meta_a == meta_b
    assert np.abs(a.astype(int) - c).mean() > 2
    assert set(meta_a) == {*relight.LIGHT_FIELDS, "shadow_fraction"}


def test_random_lights_cover_their_ranges(face):
    p = RelightParams()
    rng = np.random.default_rng(0)
    lights = [relight.random_light(rng, p) for _ in range(300)]
    lo, hi = p.azimuth
    for key in ("azimuth", "second_azimuth"):
        vals = np.array([lt[key] for lt in lights])
        # either side, |azimuth| over the whole range
        assert (vals > 0).mean() > 0.4 and (vals < 0).mean() > 0.4
        assert np.abs(vals).min() >= lo and np.abs(vals).max() <= hi
        assert np.abs(vals).min() < lo + 0.1 * (hi - lo) and np.abs(vals).max() > hi - 0.1 * (
            hi - lo
        )
    for key in ("elevation", "second_elevation"):
        vals = np.array([lt[key] for lt in lights])
        lo, hi = p.elevation
        assert vals.min() >= lo and vals.max() <= hi
        assert vals.min() < lo + 0.1 * (hi - lo) and vals.max() > hi - 0.1 * (hi - lo)
    seconds = np.array([lt["second"] for lt in lights])
    assert abs((seconds > 0).mean() - p.second) < 0.1
    for key in ("ambient", "exposure"):
        vals = np.array([lt[key] for lt in lights])
        assert vals.min() >= getattr(p, key)[0] and vals.max() <= getattr(p, key)[1]
    # drawn low: the relit face is darker than the photo on average
    images, fit, _ = face
    outs = [relight.relight(images[128], fit, np.random.default_rng(s), p)[0] for s in range(4)]
    assert np.mean([o.mean() for o in outs]) < images[128].mean()


def test_a_fit_at_256_shades_the_128_crop_like_the_256_one(face):
    _, fit, _ = face
    lit = light(40, 20, ambient=0.2)
    big, big_mask = grey_shading(fit, 256, lit, shadows=True)
    small, small_mask = grey_shading(fit, 128, lit, shadows=True)
    down = cv2.resize(big, (128, 128), interpolation=cv2.INTER_AREA)
    down_mask = cv2.resize(big_mask.astype(np.float32), (128, 128), interpolation=cv2.INTER_AREA)
    both = small_mask & (down_mask > 0.99)
    iou = (small_mask & (down_mask > 0.5)).sum() / (small_mask | (down_mask > 0.5)).sum()
    gap = np.abs(small - down)[both].mean()
    print(f"128 vs 256 resized: mask IoU {iou:.3f}, mean shading gap {gap:.4f}")
    assert iou > 0.97 and gap < 0.02


@pytest.mark.parametrize("size", SIZES)
def test_no_hard_edge_along_the_mesh_outline(face, size):
    """Outside the mesh the shading comes from a proxy: across the outline it changes no faster
    than the smooth parts of the face do."""
    _, fit, _ = face
    for azimuth, elevation in ((70, 0), (0, 45), (-45, -30), (0, 0)):
        shade, mask = grey_shading(fit, size, light(azimuth, elevation), shadows=True)
        grad = np.zeros_like(shade)
        grad[:, :-1] = np.abs(np.diff(shade, axis=1))
        grad[:-1] = np.maximum(grad[:-1], np.abs(np.diff(shade, axis=0)))
        k = np.ones((5, 5), np.uint8)
        # closed over the mouth slit: the outline, not the lips
        closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((15, 15)))
        outline = cv2.dilate(closed, k) != cv2.erode(closed, k)
        print(
            f"{size}px ({azimuth}, {elevation}): steepest on the outline {grad[outline].max():.3f}"
        )
        assert grad[outline].max() < 0.1 * 128 / size, (azimuth, elevation)
        # and the background is lit, not cut to black
        assert shade[~cv2.dilate(closed, np.ones((31, 31), np.uint8)).astype(bool)].min() > 0


def test_from_params_accepts_a_group_and_rejects_bad_ones():
    p = RelightParams.from_params({"azimuth": [0, 60], "ambient": [0.1, 0.2], "shadows": False})
    assert p == RelightParams(azimuth=(0, 60), ambient=(0.1, 0.2), shadows=False)
    assert RelightParams.from_params({}) == RelightParams()
    with pytest.raises(ValueError, match=r"relight\.ambient must be \[lo, hi\] with 0 <= lo"):
        RelightParams.from_params({"ambient": [0.5, 0.2]})
    with pytest.raises(ValueError, match=r"relight\.exposure"):
        RelightParams.from_params({"exposure": [0.0, 1.0]})
    with pytest.raises(ValueError, match=r"relight\.azimuth must be \[lo, hi\] with 0 <= lo"):
        RelightParams.from_params({"azimuth": [0, 200]})
    with pytest.raises(ValueError, match=r"relight\.elevation must be \[lo, hi\]"):
        RelightParams.from_params({"elevation": [30, -30]})
    with pytest.raises(ValueError, match=r"relight\.second must be a probability"):
        RelightParams.from_params({"second": 2})
    with pytest.raises(ValueError, match=r"relight\.tint must be in"):
        RelightParams.from_params({"tint": -0.1})
    with pytest.raises(ValueError, match=r"relight\.exposure must be \[lo, hi\]"):
        RelightParams.from_params({"exposure": 0.5})
    with pytest.raises(KeyError, match=r"unknown key\(s\) \['azimut'\]"):
        RelightParams.from_params({"azimut": 30})


def test_rejects_images_it_cannot_relight(face):
    images, fit, _ = face
    with pytest.raises(ValueError, match="square"):
        relight.relight(images[256][:, :200], fit, np.random.default_rng(0), RelightParams())


# A key light from the image's left (negative azimuth) at each new kind of setting: grazing,
# behind the face, from below, no ambient, coloured, with a second light, a highlight, a soft
# shadow. In every one the face's right half must come out darker than its left.
LEFT_LIGHTS = {
    "side": {},
    "grazing": {"azimuth": -90},
    "behind": {"azimuth": -125, "ambient": 0.0},
    "below": {"elevation": -40},
    "no ambient": {"ambient": 0.0},
    "coloured": {"tint": 0.3, "hue": 200.0},
    "second light": {"second": 0.5, "second_azimuth": -20.0, "second_elevation": 30.0},
    "highlight": {"specular": 0.6, "shininess": 12.0},
    "soft shadow": {"penumbra": 0.04},
}


@pytest.mark.parametrize("setting", list(LEFT_LIGHTS))
def test_light_from_the_left_darkens_the_right_half_at_every_setting(face, setting):
    images, fit, landmarks = face
    image = images[128]
    lt = {**light(-60, 10, ambient=0.1), **LEFT_LIGHTS[setting]}
    out, _ = relight.relight_with(image, fit, lt, shadows=True)
    mask = relight.shading(fit, 128, lt, shadows=True)[1]
    nose_x = landmarks[27:31, 0].mean() * 128 / 256
    xs = np.arange(128)[None, :].repeat(128, 0)
    left, right = mask & (xs < nose_x - 12), mask & (xs > nose_x + 12)
    gain_left = luma(out)[left].mean() / luma(image)[left].mean()
    gain_right = luma(out)[right].mean() / luma(image)[right].mean()
    print(f"{setting}: left x{gain_left:.2f}, right x{gain_right:.2f}")
    assert gain_right < 0.7 * gain_left


def test_a_coloured_light_shifts_chroma_towards_its_hue_and_keeps_identity(face):
    from datagen.face.identity import FaceDescriptor

    images, fit, landmarks = face
    image = images[256]
    white, _ = relight.relight_with(image, fit, light(-30, 10, ambient=0.2), shadows=True)
    descriptor = FaceDescriptor()
    ref = descriptor(white, landmarks)
    for hue in (0.0, 120.0, 240.0):
        lt = {**light(-30, 10, ambient=0.2), "tint": 0.3, "hue": hue}
        out, _ = relight.relight_with(image, fit, lt, shadows=True)
        mask = relight.shading(fit, 256, lt, shadows=True)[1]
        # per channel, the face's mean ratio to the white-lit face, in linear light
        lin = relight._TO_LINEAR
        ratio = lin[out][mask].mean(0) / lin[white][mask].mean(0)
        want = relight.tint_rgb(0.3, hue)
        print(f"hue {hue}: ratio {ratio.round(3)}, tint {want.round(3)}")
        # towards the tint's hue; a little less far, as the ambient share stays white
        shift, tint = ratio - 1, want - 1
        cos = shift @ tint / (np.linalg.norm(shift) * np.linalg.norm(tint))
        assert cos > 0.95 and 0.5 < np.linalg.norm(shift) / np.linalg.norm(tint) < 1.05
        # luminance stays: the tint moves colour, not brightness
        assert abs(ratio @ relight.LINEAR_LUMA - 1) < 0.05
        # and dlib still sees the same person, far below its 0.6 threshold
        d = np.linalg.norm(descriptor(out, landmarks) - ref)
        print(f"hue {hue}: identity distance to the white-lit face {d:.3f}")
        assert d < 0.2


def test_tints_have_unit_luminance():
    for chroma, hue in ((0.0, 0.0), (0.2, 45.0), (0.4, 300.0)):
        t = relight.tint_rgb(chroma, hue)
        assert abs(t @ relight.LINEAR_LUMA - 1) < 1e-9
        assert np.isclose(np.linalg.norm(t - 1), chroma)
    assert np.allclose(relight.tint_rgb(0.0, 123.0), 1.0)


def test_draws_do_not_depend_on_the_settings():
    """Every light draws the same 14 numbers: a setting that switches a part off leaves the
    other parts of each light as they were (streams stay aligned)."""
    a = RelightParams(tint=0.0, second=0.0, specular=(0.0, 0.0), penumbra=(0.0, 0.0))
    b = RelightParams(tint=0.3, second=1.0, specular=(0.1, 0.5), penumbra=(0.01, 0.02))
    for seed in range(5):
        la = relight.random_light(np.random.default_rng(seed), a)
        lb = relight.random_light(np.random.default_rng(seed), b)
        assert {k: la[k] for k in ("azimuth", "elevation", "ambient", "exposure")} == {
            k: lb[k] for k in ("azimuth", "elevation", "ambient", "exposure")
        }
        assert lb["second"] > 0 and la["tint"] == 0 and lb["tint"] > 0
