"""The identity loss L_id: distance between the identity network's descriptors of the output and
of the target (CPGAN, VividGAN: a pretrained face network's pooled features; here dlib's
face-recognition ResNet, ``models.archs.identity``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.archs.identity import DlibFaceResNet, crops_to_chips, identity_network


class IdentityLoss(nn.Module):
    """MSE between the 128-D descriptors of ``output`` and ``target``: aligned face crops,
    B x 3 x S x S in [-1, 1], resampled to dlib's face chips first. The identity network is
    frozen; gradients flow to ``output`` only (the target's descriptors are detached)."""

    def __init__(self, network: DlibFaceResNet | None = None):
        super().__init__()
        self.network = network or identity_network()

    def descriptors(self, crops: torch.Tensor) -> torch.Tensor:
        """B x 3 x S x S in [-1, 1] -> B x 128."""
        return self.network.descriptor_from_unit(crops_to_chips(crops))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            want = self.descriptors(target)
        return F.mse_loss(self.descriptors(output), want)


def identity_distance(a: torch.Tensor, b: torch.Tensor, loss: IdentityLoss) -> torch.Tensor:
    """Per-pair descriptor distance (B) of two batches of aligned crops in [-1, 1]; dlib calls
    a pair the same person below 0.6."""
    with torch.no_grad():
        return (loss.descriptors(a) - loss.descriptors(b)).norm(dim=1)
