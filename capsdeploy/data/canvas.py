"""Placing digits on a larger canvas: the building block of the translated, affine and
MultiMNIST sets. NumPy only (the inference path imports the data package)."""

from __future__ import annotations

import numpy as np


def place(images: np.ndarray, canvas: int, offsets: np.ndarray) -> np.ndarray:
    """Put each image of uint8 [N, C, h, w] on a zero canvas [N, C, canvas, canvas].

    ``offsets`` [N, 2] are the (row, column) of each image's top-left corner; each must
    keep the whole image inside the canvas.
    """
    n, c, h, w = images.shape
    offsets = np.asarray(offsets, dtype=np.int64).reshape(n, 2)
    if n and (offsets.min() < 0 or offsets[:, 0].max() > canvas - h or offsets[:, 1].max() > canvas - w):
        raise ValueError(f"offsets must keep {h}x{w} images inside a {canvas}x{canvas} canvas")
    out = np.zeros((n, c, canvas, canvas), dtype=images.dtype)
    for i, (r, col) in enumerate(offsets):
        out[i, :, r : r + h, col : col + w] = images[i]
    return out


def center(images: np.ndarray, canvas: int) -> np.ndarray:
    """Each image in the middle of a zero canvas (the ``--pad`` of training)."""
    h, w = images.shape[2:]
    if canvas < max(h, w):
        raise ValueError(f"a {canvas}x{canvas} canvas cannot hold {h}x{w} images")
    top, left = (canvas - h) // 2, (canvas - w) // 2
    return place(images, canvas, np.tile([top, left], (len(images), 1)))


def on_canvas(images: np.ndarray, size: int) -> np.ndarray:
    """Images as a model with ``size`` x ``size`` input takes them: unchanged when they fit
    exactly, centred on a zero canvas when smaller (a run trained with --pad or --multimnist
    sees 28x28 digits that way). Larger images are refused."""
    h, w = images.shape[2:]
    if (h, w) == (size, size):
        return images
    if h > size or w > size:
        raise ValueError(f"{h}x{w} images do not fit a {size}x{size} model input")
    return center(images, size)


def ink_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), inclusive, of the non-zero pixels of [C, H, W]; None if blank."""
    mask = image.max(axis=0) > 0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """[C, H, W] translated by (dy, dx) with zeros filling in; what leaves the frame is lost."""
    out = np.zeros_like(image)
    h, w = image.shape[1:]
    src_r, dst_r = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_c, dst_c = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[:, dst_r, dst_c] = image[:, src_r, src_c]
    return out
