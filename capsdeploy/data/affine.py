"""Deterministic test sets for the paper's robustness experiment (Section 5.2).

- The **translated** set: each digit placed at a random position on a 40x40 canvas,
  what a model trained with ``--pad 6`` saw; models are matched on it first.
- The **affine** set, in the style of affNIST (Tieleman, 2013,
  https://www.cs.toronto.edu/~tijmen/affNIST/): each digit on a 40x40 canvas under a
  random affine transform with affNIST's ranges, then translated to a random position
  that keeps all of its ink inside the canvas.

Every draw comes from one generator seeded by ``seed``, so a set is a pure function of
(images, seed, ranges): two users with the same split get the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from .canvas import center, ink_box, place, shift
from .imageset import ImageSet

CANVAS = 40


@dataclass(frozen=True)
class AffineRanges:
    """affNIST's ranges: rotation up to 20 degrees either way, shear up to 0.2 along each
    axis, horizontal and vertical scale 0.8 to 1.2 apiece; translation anywhere that keeps
    the digit inside the canvas."""

    max_rotation_deg: float = 20.0
    max_shear: float = 0.2
    min_scale: float = 0.8
    max_scale: float = 1.2

    def to_dict(self) -> dict:
        return asdict(self)


def translated_set(data: ImageSet, seed: int = 0, canvas: int = CANVAS) -> ImageSet:
    """Each digit, untransformed, at a uniformly random position on the canvas."""
    n, _, h, w = data.images.shape
    rng = np.random.default_rng(seed)
    offsets = np.stack([rng.integers(0, canvas - h + 1, n), rng.integers(0, canvas - w + 1, n)], axis=1)
    images = place(data.images, canvas, offsets)
    return ImageSet(images, data.labels, data.class_names, data.name, f"{data.split}[translated]")


def draw_params(n: int, rng: np.random.Generator, ranges: AffineRanges) -> dict[str, np.ndarray]:
    """The transform of each image: rotation (degrees), shear x/y, scale x/y."""
    return {
        "rotation_deg": rng.uniform(-ranges.max_rotation_deg, ranges.max_rotation_deg, n),
        "shear_x": rng.uniform(-ranges.max_shear, ranges.max_shear, n),
        "shear_y": rng.uniform(-ranges.max_shear, ranges.max_shear, n),
        "scale_x": rng.uniform(ranges.min_scale, ranges.max_scale, n),
        "scale_y": rng.uniform(ranges.min_scale, ranges.max_scale, n),
    }


def affine_matrix(rotation_deg: float, shear_x: float, shear_y: float, scale_x: float, scale_y: float):
    """2x2 forward matrix on (x, y) = (column, row): rotate . shear . scale."""
    t = math.radians(rotation_deg)
    rotate = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    shear = np.array([[1.0, shear_x], [shear_y, 1.0]])
    scale = np.diag([scale_x, scale_y])
    return rotate @ shear @ scale


def transform_about_center(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """uint8 [C, S, S] mapped by ``matrix`` about the canvas centre (bilinear)."""
    size = image.shape[-1]
    c = (size - 1) / 2.0
    inv = np.linalg.inv(matrix)
    # PIL maps each output pixel to an input one: in = inv @ (out - c) + c.
    offset = np.array([c, c]) - inv @ np.array([c, c])
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    return np.stack(
        [
            np.asarray(
                Image.fromarray(ch).transform(
                    (size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR
                )
            )
            for ch in image
        ]
    )


def affine_set(
    data: ImageSet, seed: int = 0, ranges: AffineRanges | None = None, canvas: int = CANVAS
) -> tuple[ImageSet, dict[str, np.ndarray]]:
    """The affNIST-style set and, per image, the parameters drawn (translation included)."""
    ranges = ranges or AffineRanges()
    rng = np.random.default_rng(seed)
    n = len(data)
    params = draw_params(n, rng, ranges)
    centred = center(data.images, canvas)
    out = np.zeros_like(centred)
    shifts = np.zeros((n, 2), dtype=np.int64)
    for i in range(n):
        m = affine_matrix(*(float(params[k][i]) for k in params))
        warped = transform_about_center(centred[i], m)
        box = ink_box(warped)
        if box is None:  # a blank image stays blank
            out[i] = warped
            continue
        top, bottom, left, right = box
        dy = int(rng.integers(-top, canvas - 1 - bottom + 1))
        dx = int(rng.integers(-left, canvas - 1 - right + 1))
        out[i] = shift(warped, dy, dx)
        shifts[i] = dy, dx
    params |= {"shift_y": shifts[:, 0], "shift_x": shifts[:, 1]}
    return ImageSet(out, data.labels, data.class_names, data.name, f"{data.split}[affine]"), params
