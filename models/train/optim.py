"""The optimiser step every training loop takes: a weighted sum of named loss terms."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def weighted_sum(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """Sum of ``terms[k] * weights[k]`` over the terms whose weight is not zero."""
    return sum(v * weights[k] for k, v in terms.items() if weights[k])


def optimiser_step(
    opt: torch.optim.Optimizer,
    terms: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
) -> dict[str, float]:
    """One step on the weighted sum of ``terms``; returns every term and the ``total`` as
    floats (for logging)."""
    total = weighted_sum(terms, weights)
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    return {**{k: float(v.detach()) for k, v in terms.items()}, "total": float(total.detach())}
