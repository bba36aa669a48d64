"""MultiMNIST as the paper builds it (Section 6): two digits of different classes from
the same split, each shifted by up to 4 px in each direction on a 36x36 canvas, overlaid
with a pixel-wise maximum.

The paper draws 1,000 pairs per digit (60M images); a CPU run uses ``pairs_per_digit``
partners per digit. Every draw comes from one generator seeded by ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .canvas import center, shift
from .imageset import ImageSet

MAX_SHIFT = 4
CANVAS = 36


@dataclass(frozen=True)
class MultiSet:
    images: np.ndarray  # uint8 [N, C, 36, 36], the overlay
    labels: np.ndarray  # int64 [N, 2], the two classes (always different)
    parts: np.ndarray  # uint8 [N, 2, C, 36, 36], each digit alone where it was placed
    sources: np.ndarray  # int64 [N, 2], indices into the split the digits came from
    shifts: np.ndarray  # int64 [N, 2, 2], (dy, dx) of each digit
    class_names: tuple[str, ...]
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def single(self, which: int = 0) -> ImageSet:
        """The overlays labelled by one of their digits (for tools that take one label)."""
        return ImageSet(self.images, self.labels[:, which], self.class_names, "multimnist", self.split)


def make_pairs(
    data: ImageSet, pairs_per_digit: int = 1, seed: int = 0, max_shift: int = MAX_SHIFT
) -> MultiSet:
    """``pairs_per_digit`` overlays per digit of ``data``, each with a partner of another class."""
    rng = np.random.default_rng(seed)
    n = len(data)
    canvas = data.images.shape[-1] + 2 * max_shift
    padded = center(data.images, canvas)
    first = np.repeat(np.arange(n), pairs_per_digit)
    second = np.empty_like(first)
    by_class = {c: np.flatnonzero(data.labels != c) for c in np.unique(data.labels)}
    if len(by_class) < 2:
        raise UsageError(f"{data.name}/{data.split}: MultiMNIST pairs need digits of two classes at least")
    for j, i in enumerate(first):
        others = by_class[data.labels[i]]
        second[j] = others[rng.integers(len(others))]
    sources = np.stack([first, second], axis=1)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(first), 2, 2))
    parts = np.stack(
        [np.stack([shift(padded[src[k]], *shifts[j, k]) for k in range(2)]) for j, src in enumerate(sources)]
    )
    images = parts.max(axis=1)
    labels = data.labels[sources]
    return MultiSet(images, labels, parts, sources, shifts, data.class_names, f"{data.split}[multi]")


def both_found(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image of K digits: are the K highest scores exactly its K labels? (the paper's
    MultiMNIST criterion: both labels must be the two longest capsules)."""
    k = labels.shape[1]
    top = np.sort(np.argsort(-scores, axis=1, kind="stable")[:, :k], axis=1)
    return (top == np.sort(labels, axis=1)).all(axis=1)
