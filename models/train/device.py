"""Which device a run uses: ``auto`` takes the GPU when torch sees one."""

from __future__ import annotations

import torch

DEVICE_CHOICES = "auto, cpu or cuda[:N]"


def check_device_name(name: str, param: str) -> None:
    """A clear error for a device param that is none of ``auto``, ``cpu``, ``cuda[:N]``."""
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise ValueError(f"{param} must be {DEVICE_CHOICES}, not {name!r}")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return torch.device(name)
