"""What each architecture is trained to minimize, given a batch.

CapsNet: the margin loss plus the scaled reconstruction loss, the decoder masked by the
true class (Sections 3 and 4.1); with two digits per image, both classes are present and
each digit is reconstructed from its own capsule (Section 6). The baseline CNN: cross
entropy on its logits (Section 5); with two digits, a sigmoid cross entropy per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import capsule_loss
from ..model.losses import present_classes


def training_step_loss(
    net, capsules: bool, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, recon_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, scores) for one batch.

    ``x`` is the model input, ``y`` the classes ([B], or [B, K] for K digits per image) and
    ``target`` the [0, 1] image the decoder should draw ([B, C, H, W], or each digit apart,
    [B, K, C, H, W]).
    """
    if capsules:
        scores, _, recon = net(x, y, reconstruct=True)
        return capsule_loss(scores.float(), y, recon.float(), target, recon_scale), scores
    scores, logits = net(x)
    if y.ndim == 2:
        multi_hot = present_classes(y, logits.shape[1]).float()
        return F.binary_cross_entropy_with_logits(logits.float(), multi_hot), scores
    return F.cross_entropy(logits.float(), y), scores
