"""Discriminators shared by the face-hallucination GANs."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al., 2017): 4x4 convolutions, ``layers`` of them with
    stride 2 (widths ``width``, 2 ``width``, ... capped at 8 ``width``), one more with stride 1,
    then a stride-1 4x4 convolution to one logit per patch; LeakyReLU(0.2) between them.

    With ``spectral_norm`` (CPGAN supplement s2.1) every convolution's weight is divided by its
    largest singular value, estimated by one power iteration per training-mode forward pass.

    B x C_in x H x W -> B x 1 x h x w logits (128 px, 3 layers: 14 x 14 patches of 70 px).
    """

    def __init__(
        self, in_channels: int = 3, width: int = 64, layers: int = 3, spectral_norm: bool = True
    ):
        super().__init__()

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            c = nn.Conv2d(cin, cout, 4, stride, 1)
            return _spectral_norm(c) if spectral_norm else c

        # No batch or instance norm, with or without spectral norm: spectral norm already bounds
        # the discriminator (Miyato et al., 2018; SAGAN drops batch norm beside it), and the
        # author code's batch norm over batches of 4 would tie the patches of a batch together.
        body: list[nn.Module] = [conv(in_channels, width, 2), nn.LeakyReLU(0.2, True)]
        cin = width
        for n in range(1, layers + 1):
            cout = width * min(2**n, 8)
            # pix2pix's layout: the last widening conv keeps the resolution (stride 1)
            body += [conv(cin, cout, 2 if n < layers else 1), nn.LeakyReLU(0.2, True)]
            cin = cout
        body.append(conv(cin, 1, 1))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
