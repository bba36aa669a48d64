"""A PNG of inputs (top row of each pair) above their reconstructions."""

from __future__ import annotations

import numpy as np
from PIL import Image


def reconstruction_grid(
    images: np.ndarray, recons: np.ndarray, columns: int = 10, scale: int = 3
) -> Image.Image:
    """images uint8 [N, C, H, W]; recons float [N, C*H*W] in [0, 1]."""
    n, c, h, w = images.shape
    rec = np.clip(recons.reshape(n, c, h, w) * 255.0, 0, 255).astype(np.uint8)
    rows = -(-n // columns)
    canvas = np.zeros((rows * 2 * h, columns * w, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[2 * r * h : (2 * r + 1) * h, col * w : (col + 1) * w] = images[i].transpose(1, 2, 0)
        canvas[(2 * r + 1) * h : (2 * r + 2) * h, col * w : (col + 1) * w] = rec[i].transpose(1, 2, 0)
    mode = "L" if c == 1 else "RGB"
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode)
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
