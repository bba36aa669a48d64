"""An in-memory labelled image set, the one thing the data stage hands on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CapsDeployError


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    class_names: tuple[str, ...]
    name: str
    split: str

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError("images must be uint8 [N, C, H, W]")
        if len(self.images) != len(self.labels):
            raise CapsDeployError(
                f"{self.name}/{self.split}: {len(self.images)} images but {len(self.labels)} labels"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise CapsDeployError(f"{self.name}/{self.split}: labels outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, indices: np.ndarray, split: str | None = None) -> ImageSet:
        """The images at ``indices``, in that order, optionally under another split name."""
        return ImageSet(
            self.images[indices], self.labels[indices], self.class_names, self.name, split or self.split
        )

    def head(self, n: int | None) -> ImageSet:
        if n is None or n >= len(self):
            return self
        return ImageSet(self.images[:n], self.labels[:n], self.class_names, self.name, self.split)
