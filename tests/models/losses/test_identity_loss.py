"""The identity loss: aligned crops -> dlib face chips -> dlib's ResNet descriptors."""

import dlib
import numpy as np
import pytest
import torch

from datagen.face.align import TEMPLATE_68
from models.archs.identity import CHIP_PADDING, CHIP_SIZE, crops_to_chips, identity_network
from models.losses.identity import IdentityLoss, identity_distance
from tests.helpers import small_faces


def test_crops_become_the_chips_dlib_would_cut():
    # a smooth pattern in crop space whose face landmarks sit exactly on the template
    s = 512
    y, x = np.mgrid[0:s, 0:s] / s
    img = np.stack([128 + 100 * np.sin(6 * x), 128 + 100 * np.cos(5 * y), 255 * x * y], 2)
    img = np.ascontiguousarray(img.astype(np.uint8))
    pts = TEMPLATE_68 * s - 0.5
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    shape = dlib.full_object_detection(rect, [dlib.point(round(a), round(b)) for a, b in pts])
    want = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING).astype(float)
    got = crops_to_chips(torch.from_numpy(img).permute(2, 0, 1)[None].float())[0]
    got = got.permute(1, 2, 0).numpy()
    assert got.shape == (CHIP_SIZE, CHIP_SIZE, 3)
    assert np.abs(got - want).mean() < 1.0  # grey levels: the same chip up to interpolation


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Aligned 128 px crops in [-1, 1] of three people, two photos each (neutral, smiling)."""
    from datagen.core.shards import ShardDataset

    root = small_faces(tmp_path_factory, ("001", "002", "003"), 0.0, {"samples_per_shard": 16})
    ds = ShardDataset(root, images=["hr"])
    rows = sorted(((ds[i]["identity"], ds[i]["hr"]) for i in range(len(ds))), key=lambda r: r[0])
    return torch.stack([hr.float() / 127.5 - 1 for _, hr in rows]), [i for i, _ in rows]


def test_identity_loss_is_zero_for_the_target_and_tells_people_apart(faces, tmp_path):
    crops, ids = faces
    loss = IdentityLoss(identity_network(cache=tmp_path / "id.safetensors"))
    assert float(loss(crops, crops)) == 0.0
    d = identity_distance(crops[:, None].expand(-1, len(crops), -1, -1, -1).flatten(0, 1),
                          crops[None].expand(len(crops), -1, -1, -1, -1).flatten(0, 1),
                          loss).view(len(crops), len(crops))  # fmt: skip
    same = torch.tensor([[a == b for b in ids] for a in ids]) & ~torch.eye(len(ids), dtype=bool)
    other = torch.tensor([[a != b for b in ids] for a in ids])
    assert d[same].max() < 0.6 < d[other].min()  # dlib's threshold holds on our crops
    out = crops[:2].clone().requires_grad_(True)
    value = loss(out, crops[2:4])
    value.backward()
    assert value > 0 and out.grad.abs().sum() > 0
