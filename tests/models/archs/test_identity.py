"""The identity network: dlib's face-recognition ResNet read into torch by our own parser."""

import dlib
import numpy as np
import pytest
import torch

from datagen.core.images import load_rgb
from datagen.face.landmarks import DlibLandmarker, FaceDetector
from models.archs.dlib_format import DlibFormatError, read_network
from models.archs.identity import dlib_file, identity_network
from tests.helpers import BUNDLED


@pytest.fixture(scope="module")
def chips_and_dlib_descriptors():
    """20 bundled faces as dlib face chips (150 px, padding 0.25) and dlib's own descriptors."""
    paths = sorted(BUNDLED.rglob("*.jpg"))[::10][:20]
    detector, landmarker = FaceDetector(), DlibLandmarker()
    chips = []
    for p in paths:
        rgb = load_rgb(p, 10**8, 32)
        lm = landmarker(rgb, detector.detect(rgb)[0])
        (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
        rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in lm])
        chips.append(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
    chips = np.stack(chips)
    net = dlib.face_recognition_model_v1(str(dlib_file()))
    ref = np.stack([np.asarray(net.compute_face_descriptor(c)) for c in chips])
    return torch.from_numpy(chips).permute(0, 3, 1, 2).float(), ref


def test_descriptors_match_dlib_on_20_bundled_faces(chips_and_dlib_descriptors, tmp_path):
    chips, ref = chips_and_dlib_descriptors
    assert len(chips) == 20 and chips.shape[1:] == (3, 150, 150)
    net = identity_network(cache=tmp_path / "id.safetensors")
    with torch.no_grad():
        out = net(chips).numpy()
    assert np.abs(out - ref).max() <= 1e-3
    # and the descriptors tell people apart as dlib's do: same person nearer than others
    d = np.linalg.norm(ref[:, None] - ref[None], axis=2)
    assert np.allclose(np.linalg.norm(out[:, None] - out[None], axis=2), d, atol=2e-3)


def test_cache_is_reused_and_rebuilt_when_stale(chips_and_dlib_descriptors, tmp_path):
    chips, _ = chips_and_dlib_descriptors
    cache = tmp_path / "cache" / "id.safetensors"
    first = identity_network(cache=cache)
    assert cache.is_file()
    again = identity_network(cache=cache)
    for (k, a), (_, b) in zip(first.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    from models.train.checkpoints import save_tensors

    # a cache made from another file (another SHA-256) is not trusted: rebuilt from the source
    save_tensors({"x": torch.zeros(1)}, cache, {"source_sha256": "0" * 64})
    rebuilt = identity_network(cache=cache)
    with torch.no_grad():
        assert torch.equal(rebuilt(chips[:2]), first(chips[:2]))


def test_it_is_differentiable(chips_and_dlib_descriptors):
    chips, _ = chips_and_dlib_descriptors
    net = identity_network(cache=None)
    x = (chips[:2] / 127.5 - 1).requires_grad_(True)
    a, b = net.descriptor_from_unit(x)
    (a - b).norm().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in net.parameters())


def test_a_file_that_is_not_a_dlib_network_is_a_clear_error(tmp_path):
    bad = tmp_path / "not_a_net.dat"
    bad.write_bytes(b"\x01\x01\x01\x05hello" + bytes(100))
    with pytest.raises(DlibFormatError, match="not a dlib loss_metric network"):
        read_network(bad)
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(dlib_file().read_bytes()[:50_000])
    with pytest.raises(DlibFormatError, match="truncated.dat"):
        read_network(truncated)
