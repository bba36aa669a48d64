"""uint8 pixels -> model input, driven by the normalization stored with the model."""

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


def to_model_input(pixels: torch.Tensor, normalization: dict) -> torch.Tensor:
    return normalize_unit(to_unit(pixels), normalization)
