"""What the training loop draws batches from: single digits with random shifts, or
MultiMNIST pairs regenerated every epoch (the paper draws fresh pairs on the fly).

Both are pure functions of (seed, epoch) and the training split, so an interrupted run
resumes onto the same batches.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import ImageSet
from ..data.multimnist import MultiSet, make_pairs
from .augment import random_shifts, shift_images, to_unit


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


class SingleDigits:
    """One digit per image, shifted by up to ``max_shift`` px (zero padding); the shifted
    image is also the reconstruction target."""

    def __init__(self, data: ImageSet, max_shift: int):
        self.pixels = torch.from_numpy(data.images)
        self.labels = torch.from_numpy(data.labels)
        self.max_shift = max_shift
        self.shifts: torch.Tensor | None = None  # set by start_epoch

    def __len__(self) -> int:
        return len(self.labels)

    def start_epoch(self, seed: int, epoch: int) -> None:
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        self.shifts = random_shifts(len(self), self.max_shift, gen)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image in [0, 1], classes [B], reconstruction target)."""
        assert self.shifts is not None, "start_epoch() comes first"
        image = shift_images(to_unit(self.pixels[idx]), self.shifts[idx])
        return image, self.labels[idx], image


class DigitPairs:
    """MultiMNIST: ``pairs_per_digit`` overlays per training digit, drawn anew each epoch;
    each digit alone is the reconstruction target of its own capsule."""

    def __init__(self, data: ImageSet, pairs_per_digit: int):
        self.data = data
        self.pairs_per_digit = pairs_per_digit
        self.pairs: MultiSet | None = None  # set by start_epoch

    def __len__(self) -> int:
        return len(self.data) * self.pairs_per_digit

    def start_epoch(self, seed: int, epoch: int) -> None:
        self.pairs = make_pairs(self.data, self.pairs_per_digit, epoch_seed(seed, epoch))

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(overlay in [0, 1], classes [B, 2], each digit apart [B, 2, C, H, W] in [0, 1])."""
        assert self.pairs is not None, "start_epoch() comes first"
        i = idx.numpy()
        return (
            to_unit(torch.from_numpy(self.pairs.images[i])),
            torch.from_numpy(self.pairs.labels[i]),
            to_unit(torch.from_numpy(np.ascontiguousarray(self.pairs.parts[i]))),
        )


def correct(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image: the longest capsule is the label, or with K labels, the K longest are them
    (the paper's MultiMNIST criterion)."""
    if labels.ndim == 1:
        return scores.argmax(1) == labels
    top = scores.topk(labels.shape[1], dim=1).indices.sort(dim=1).values
    return (top == labels.sort(dim=1).values).all(dim=1)
