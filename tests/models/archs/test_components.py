"""Facial component geometry: centres, whole-pixel crops that copy pixels exactly, the max-out
stitched prior, and landmarks read back from heatmaps."""

import torch

from models.archs.components import (
    COMPONENTS,
    DEFAULT_SIZES,
    component_boxes,
    component_centres,
    crop_components,
    heatmap_landmarks,
    stitch_components,
)
from models.losses.heatmap import gaussian_heatmaps

SIZES = [DEFAULT_SIZES[k] for k in COMPONENTS]


def landmarks_at(points: dict[str, tuple[float, float]]) -> torch.Tensor:
    """1 x 68 x 2 landmarks whose component groups all sit at the given points."""
    lm = torch.zeros(1, 68, 2)
    lm[0, 36:42] = torch.tensor(points["left_eye"])
    lm[0, 42:48] = torch.tensor(points["right_eye"])
    lm[0, 27:36] = torch.tensor(points["nose"])
    lm[0, 48] = torch.tensor(points["mouth"]) - torch.tensor([16.0, 0.0])
    lm[0, 54] = torch.tensor(points["mouth"]) + torch.tensor([16.0, 0.0])
    return lm


CANONICAL = {"left_eye": (44.3, 48.2), "right_eye": (82.7, 48.3), "nose": (63.5, 66.1),
             "mouth": (63.5, 88.0)}  # fmt: skip


def test_centres_boxes_and_crops_copy_the_known_patch():
    lm = landmarks_at(CANONICAL)
    centres = component_centres(lm)
    assert torch.allclose(centres[0], torch.tensor(list(CANONICAL.values())))
    boxes = component_boxes(centres, SIZES, 128)
    # the author code's convention: a 40 px crop at x 44.3 starts at floor(44.3) - 20 + 1
    assert boxes[0, 0].tolist() == [25.0, 29.0, 65.0, 69.0]
    assert boxes[0, 3].tolist() == [40.0, 73.0, 88.0, 105.0]  # mouth 48 x 32
    image = torch.rand(1, 3, 128, 128, requires_grad=True)
    crops = crop_components(image, boxes, SIZES)
    for (w, h), crop, box in zip(SIZES, crops, boxes[0], strict=True):
        x, y = int(box[0]), int(box[1])
        assert crop.shape == (1, 3, h, w)
        assert torch.equal(crop, image[:, :, y : y + h, x : x + w])
    sum(c.sum() for c in crops).backward()
    assert image.grad[0, 0, 30, 30] == 1 and image.grad[0, 0, 0, 0] == 0


def test_boxes_are_kept_inside_the_image():
    corner = {"left_eye": (2.0, 1.0), "right_eye": (127.0, 126.0), "nose": (64.0, 0.0),
              "mouth": (126.0, 127.0)}  # fmt: skip
    boxes = component_boxes(component_centres(landmarks_at(corner)), SIZES, 128)
    assert boxes.min() >= 0 and boxes[..., 2].max() <= 128 and boxes[..., 3].max() <= 128
    widths = boxes[0, :, 2] - boxes[0, :, 0]
    assert widths.tolist() == [w for w, _ in SIZES]


def test_stitching_is_max_out_fusion_on_a_masked_template():
    boxes = torch.tensor([[[10.0, 10.0, 30.0, 30.0], [20.0, 20.0, 40.0, 40.0]]])
    a = torch.full((1, 1, 20, 20), 0.2, requires_grad=True)
    b = torch.linspace(-1, 1, 400).view(1, 1, 20, 20).requires_grad_()
    prior = stitch_components([a, b], boxes, 64)
    assert prior.shape == (1, 1, 64, 64)
    assert torch.all(prior[0, 0, :10] == -1) and prior[0, 0, 50, 50] == -1  # masked
    assert torch.equal(prior[0, 0, 10:20, 10:30], a[0, 0, :10])  # a alone
    overlap = torch.maximum(a[0, 0, 10:, 10:], b[0, 0, :10, :10])
    assert torch.equal(prior[0, 0, 20:30, 20:30], overlap)  # the element-wise maximum
    assert torch.equal(prior[0, 0, 30:40, 20:40], b[0, 0, 10:])
    prior.sum().backward()
    assert a.grad.sum() > 0 and b.grad.sum() > 0


def test_landmarks_come_back_from_their_heatmaps():
    lm = torch.rand(3, 68, 2) * 100 + 14
    maps = gaussian_heatmaps(lm, 128, 64, 2.5)
    got = heatmap_landmarks(maps, 128)
    assert got.shape == (3, 68, 2)
    assert (got - lm).abs().max() < 0.75  # sub-pixel at 128 px from 64 px maps
    empty = heatmap_landmarks(torch.zeros(1, 2, 8, 8), 64)
    assert torch.isfinite(empty).all()


def test_landmarks_at_the_map_edge_are_not_pulled_inward():
    # half a Gaussian is all the map holds of a point on its edge: its centroid lies inside, but
    # within a heatmap pixel (4 px here), the edge row counted once
    lm = torch.tensor([[[0.2, 64.0], [127.0, 3.0], [8.0, 120.0]]])
    got = heatmap_landmarks(gaussian_heatmaps(lm, 128, 32, 1.25), 128)
    assert (got - lm).abs().max() < 4.0, got
    assert (got[0, 2] - lm[0, 2]).abs().max() < 0.5  # two heatmap pixels in: exact enough
