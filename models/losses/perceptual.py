"""Losses on VGG-19 features: Pro-UIGAN's perceptual loss L_f (relu3_2) and style loss L_style
(Gram matrices of pool1-3), and CPGAN's illumination-compensation loss L_ic (per-channel mean
and deviation of relu1_1 ... relu4_1).

Each comes twice: a function on feature dicts (so that a caller who needs several of these
losses can run the VGG once per image and reuse the features), and an ``nn.Module`` that holds
the VGG and takes images. The modules accept a shared ``VGGFeatures`` so that several losses do
not each build one.

All images are B x 3 x H x W RGB in [-1, 1] (the networks' range). The second image (target or
guide) is a constant: its features are computed without gradient, since it is the ground truth
or the guide face, never something being trained; this also saves the memory of its graph.

Scale: this VGG takes Caffe's input (BGR, 0-255, mean-free), so its raw features are large
(relu3_2 of a 128 px face averages ~1e2) where the papers' code feeds torchvision's VGG
ImageNet-normalised input. Every loss here divides each layer's features by its mean activation
on faces (``vgg_features.LAYER_SCALES``) first. Bicubic x8 against the true face (8 bundled
faces) then gives L_mse 0.017, L_f (relu3_2) 2.0, L_style 2e-4 and L_ic (against another face)
2.9, where the raw features gave L_f ~4e4, L_style ~3e6 and L_ic ~2e5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.archs.adain import channel_stats
from models.archs.vgg_features import LAYER_SCALES, VGGFeatures
from models.losses.pixel import check_pair

Features = Mapping[str, torch.Tensor]


def _total(terms: list[torch.Tensor]) -> torch.Tensor:
    # an empty layer list would silently make the loss a constant 0
    if not terms:
        raise ValueError("no layers given")
    return torch.stack(terms).sum()


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """B x C x H x W features -> B x C x C Gram matrices F F^T / (C H W).

    Dividing by C H W (as Pro-UIGAN's code does) keeps the entries comparable across layers
    and image sizes; the Gram ignores where a feature occurs, only which occur together."""
    b, c, h, w = feat.shape
    flat = feat.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def perceptual_loss(out_feats: Features, target_feats: Features, layer: str) -> torch.Tensor:
    """MSE between the two images' features at ``layer`` (B x C x h x w each), each divided by
    the layer's scale."""
    check_pair(out_feats[layer], target_feats[layer])
    s = LAYER_SCALES[layer]
    return F.mse_loss(out_feats[layer] / s, target_feats[layer] / s)


def style_loss(out_feats: Features, target_feats: Features, layers: Sequence[str]) -> torch.Tensor:
    """Sum over ``layers`` of the MSE between the two images' Gram matrices (of the features
    divided by the layer's scale)."""
    terms = []
    for layer in layers:
        check_pair(out_feats[layer], target_feats[layer])
        s = LAYER_SCALES[layer]
        out_gram, target_gram = (gram_matrix(f[layer] / s) for f in (out_feats, target_feats))
        terms.append(F.mse_loss(out_gram, target_gram))
    return _total(terms)


def illumination_compensation_loss(
    out_feats: Features, guide_feats: Features, layers: Sequence[str]
) -> torch.Tensor:
    """CPGAN's L_ic: sum over ``layers`` of MSE(mean(out), mean(guide)) + MSE(std(out),
    std(guide)), the per-sample, per-channel spatial statistics (B x C) of ``channel_stats`` of
    the features divided by the layer's scale.

    Only the statistics are compared, not the maps: output and guide are different people's
    faces, and the loss asks the output to take on the guide's illumination (AdaIN's style
    statistics), not its content. The sizes may differ for the same reason."""
    terms = []
    for layer in layers:
        s = LAYER_SCALES[layer]
        out_mean, out_std = channel_stats(out_feats[layer] / s)
        guide_mean, guide_std = channel_stats(guide_feats[layer] / s)
        check_pair(out_mean, guide_mean)  # B x C each: the batch sizes must agree
        terms.append(F.mse_loss(out_mean, guide_mean) + F.mse_loss(out_std, guide_std))
    return _total(terms)


def _extractor(vgg: VGGFeatures | None, layers: Sequence[str]) -> VGGFeatures:
    """``vgg`` if it has all of ``layers``, a new VGGFeatures for them if it is None."""
    if vgg is None:
        return VGGFeatures(layers)
    missing = [layer for layer in layers if layer not in vgg.layers]
    if missing:
        raise ValueError(
            f"the shared VGGFeatures lacks {missing}; it has {list(vgg.layers)}. Build it "
            "with the layers of every loss that shares it"
        )
    return vgg


def _as_tuple(layers: str | Sequence[str]) -> tuple[str, ...]:
    # a bare name is one layer, not a sequence of letters
    return (layers,) if isinstance(layers, str) else tuple(layers)


class _VGGLoss(nn.Module):
    """Holds the (possibly shared) VGG and runs it on the two images."""

    def __init__(self, layers: str | Sequence[str], vgg: VGGFeatures | None):
        super().__init__()
        self.layers = _as_tuple(layers)
        if not self.layers:
            raise ValueError("no layers given")
        self.vgg = _extractor(vgg, self.layers)

    def _features(self, output: torch.Tensor, other: torch.Tensor) -> tuple[Features, Features]:
        out_feats = self.vgg(output)
        with torch.no_grad():
            other_feats = self.vgg(other)
        return out_feats, other_feats


class PerceptualLoss(_VGGLoss):
    """Pro-UIGAN's L_f: MSE between VGG-19 ``layer`` features (default relu3_2) of the output
    and the target, B x 3 x H x W images in [-1, 1] of the same shape. Returns a scalar."""

    def __init__(self, layer: str = "relu3_2", vgg: VGGFeatures | None = None):
        super().__init__(layer, vgg)
        self.layer = layer

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(output, target)
        return perceptual_loss(*self._features(output, target), self.layer)


class StyleLoss(_VGGLoss):
    """Pro-UIGAN's L_style: sum over ``layers`` of the MSE between Gram matrices (normalised by
    C H W) of output and target features. The paper reads VGG-16's pool1-3, which cannot be had
    here; VGG-19's pool1-3 (same resolutions and widths, deeper blocks 3) stand in.

    ``output``, ``target``: B x 3 x H x W images in [-1, 1] of the same shape; a scalar."""

    def __init__(
        self,
        layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        vgg: VGGFeatures | None = None,
    ):
        super().__init__(layers, vgg)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(output, target)
        return style_loss(*self._features(output, target), self.layers)


class IlluminationCompensationLoss(_VGGLoss):
    """CPGAN's L_ic: the output should carry the guide face's per-channel feature statistics
    (mean and deviation of relu1_1 ... relu4_1); see ``illumination_compensation_loss``.

    ``output``: B x 3 x H x W, ``guide``: B x 3 x H' x W' (another person's well-lit face; the
    size may differ), both in [-1, 1]. Returns a scalar."""

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
        vgg: VGGFeatures | None = None,
    ):
        super().__init__(layers, vgg)

    def forward(self, output: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        if output.shape[0] != guide.shape[0]:
            raise ValueError(f"batch sizes differ: {output.shape[0]} vs {guide.shape[0]}")
        return illumination_compensation_loss(*self._features(output, guide), self.layers)
