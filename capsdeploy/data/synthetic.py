"""A digit dataset the project renders itself, for the offline quickstart and tests.

Digits are drawn with Pillow's bundled scalable font, then distorted by a
random affine map, stroke width and pixel noise. Everything is drawn from one
seeded generator, so a (seed, size) pair always gives the same images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

_CANVAS = 56  # render at 2x, then downsample: smoother strokes


def render_digits(n: int, seed: int, image_size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.empty(n, dtype=np.int64)
    images = np.empty((n, 1, image_size, image_size), dtype=np.uint8)
    fonts = {s: ImageFont.load_default(size=s) for s in (34, 38, 42)}
    for i in range(n):
        # Label drawn with its image, so the first k images never depend on n.
        labels[i] = rng.integers(0, 10)
        images[i, 0] = _render_one(int(labels[i]), rng, fonts, image_size)
    return images, labels


def _render_one(digit: int, rng: np.random.Generator, fonts: dict, size: int) -> np.ndarray:
    img = Image.new("L", (_CANVAS, _CANVAS), 0)
    draw = ImageDraw.Draw(img)
    font = fonts[list(fonts)[rng.integers(len(fonts))]]
    draw.text((_CANVAS / 2, _CANVAS / 2), str(digit), fill=255, font=font, anchor="mm")
    width = int(rng.integers(0, 3))
    if width:
        img = img.filter(ImageFilter.MaxFilter(2 * width + 1))
    angle = np.deg2rad(rng.uniform(-15, 15))
    shear = rng.uniform(-0.3, 0.3)
    scale = rng.uniform(0.85, 1.1)
    tx, ty = rng.uniform(-3, 3, size=2)
    # Inverse map (output -> input pixel), about the canvas centre.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    a, b, d, e = cos, sin + shear * cos, -sin, cos - shear * sin
    cx = cy = _CANVAS / 2
    c = cx - a * cx - b * cy + tx
    f = cy - d * cx - e * cy + ty
    img = img.transform(img.size, Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(img, dtype=np.float32)
    pixels += rng.normal(0, 12, size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)
