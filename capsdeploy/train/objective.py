"""What each architecture is trained to minimize, given a batch.

CapsNet: the margin loss plus the scaled reconstruction loss, the decoder masked by the
true class (Sections 3 and 4.1). The baseline CNN: cross entropy on its logits (Section 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import capsule_loss


def training_step_loss(
    net, capsules: bool, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, recon_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, scores) for one batch: ``x`` the model input, ``target`` the [0, 1] image."""
    if capsules:
        scores, _, recon = net(x, y, reconstruct=True)
        return capsule_loss(scores.float(), y, recon.float(), target, recon_scale), scores
    scores, logits = net(x)
    return F.cross_entropy(logits.float(), y), scores
