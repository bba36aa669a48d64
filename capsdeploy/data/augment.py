"""The paper's only augmentation: a random shift of up to 2 px, zero padded."""

from __future__ import annotations

import torch


def random_shifts(n: int, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """[n, 2] integer (dy, dx) in [-max_shift, max_shift]."""
    return torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)


def shift_images(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Translate each image of [B, C, H, W] by its own (dy, dx), filling with zeros."""
    if shifts.numel() == 0:
        return x
    pad = int(shifts.abs().max())
    if pad == 0:
        return x
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = torch.arange(h, device=x.device) + pad - shifts[:, 0:1].to(x.device)  # [B, H]
    cols = torch.arange(w, device=x.device) + pad - shifts[:, 1:2].to(x.device)  # [B, W]
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()
