"""The squash non-linearity and capsule lengths, both safe at the zero vector."""

from __future__ import annotations

import torch


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s|, with eps inside the square root.

    The eps keeps both value and gradient finite at s = 0, where the textbook
    form divides 0 by 0.
    """
    sq = (s * s).sum(dim=dim, keepdim=True)
    return s * (sq / (1.0 + sq)) / torch.sqrt(sq + eps)


def capsule_length(v: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Euclidean length, with eps so the gradient at a zero capsule is finite."""
    return torch.sqrt((v * v).sum(dim=dim) + eps)
