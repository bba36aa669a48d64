"""Margin loss and reconstruction loss, as in the paper (Section 3 and 4.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

M_PLUS, M_MINUS, LAMBDA, RECON_SCALE = 0.9, 0.1, 0.5, 0.0005


def margin_loss(
    scores: torch.Tensor,
    target: torch.Tensor,
    m_plus: float = M_PLUS,
    m_minus: float = M_MINUS,
    lam: float = LAMBDA,
) -> torch.Tensor:
    """Per-image loss summed over classes, averaged over the batch.

    ``target`` is [B] class indices, or [B, K] when K digits are present in each image
    (MultiMNIST): every listed class is "present" (Section 6).
    """
    t = present_classes(target, scores.shape[1]).to(scores.dtype)
    present = t * F.relu(m_plus - scores) ** 2
    absent = lam * (1.0 - t) * F.relu(scores - m_minus) ** 2
    return (present + absent).sum(dim=1).mean()


def present_classes(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[B] or [B, K] class indices -> [B, classes] multi-hot."""
    t = F.one_hot(target, num_classes)
    return t.amax(dim=1) if target.ndim == 2 else t


def reconstruction_loss(recon: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Sum of squared pixel errors per image, averaged over the batch.

    With K digits per image, ``recon`` is [B, K, P] and ``image`` the digits apart,
    [B, K, C, H, W]: each reconstruction is scored against its own digit and the K
    errors are summed.
    """
    return ((recon.flatten(1) - image.flatten(1)) ** 2).sum(dim=1).mean()


def capsule_loss(
    scores: torch.Tensor,
    target: torch.Tensor,
    recon: torch.Tensor | None = None,
    image: torch.Tensor | None = None,
    recon_scale: float = RECON_SCALE,
) -> torch.Tensor:
    loss = margin_loss(scores, target)
    if recon is not None:
        if image is None:
            raise ValueError("a reconstruction term needs the image it reconstructs")
        loss = loss + recon_scale * reconstruction_loss(recon, image)
    return loss
