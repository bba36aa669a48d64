"""Training-time tensors: pixels scaled to [0, 1], normalized, and the paper's only
augmentation, a random shift of up to 2 px with zero padding.

Inference preprocessing is NumPy (``capsdeploy.data.preprocess``); this module is
its torch twin for the training loop, where images are shifted on the device
and the shifted [0, 1] image is also the reconstruction target.
"""

from __future__ import annotations

import torch


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [.., C, H, W] -> float32 in [0, 1] (also the reconstruction target)."""
    return pixels.to(torch.float32) / 255.0


def normalize_unit(x: torch.Tensor, normalization: dict) -> torch.Tensor:
    """[0, 1] images -> model input: (x - mean) / std per channel."""
    mean = torch.as_tensor(normalization["mean"], dtype=x.dtype, device=x.device)
    std = torch.as_tensor(normalization["std"], dtype=x.dtype, device=x.device)
    if bool((mean == 0).all()) and bool((std == 1).all()):
        return x
    return (x - mean[:, None, None]) / std[:, None, None]


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
