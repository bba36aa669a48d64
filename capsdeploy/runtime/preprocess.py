"""The one place that turns pixels into model input, driven by the model's metadata.

predict, serve, bench, validate and INT8 calibration all call this; none
re-implements normalization.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.normalize import to_model_input
from ..errors import UsageError


def prepare_batch(pixels: np.ndarray, input_dtype: str, normalization: dict) -> np.ndarray:
    """uint8 [N, C, H, W] -> the array the graph's ``image`` input takes."""
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise UsageError(f"expected uint8 pixels [N, C, H, W], got {pixels.dtype} {pixels.shape}")
    if input_dtype == "uint8":
        return np.ascontiguousarray(pixels)
    x = to_model_input(torch.from_numpy(np.ascontiguousarray(pixels)), normalization).numpy()
    return x.astype(np.float16 if input_dtype == "float16" else np.float32, copy=False)
