"""A seeded, stratified hold-out split: model selection happens on it, never on the test set."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted.

    Each class gives ``round(fraction * its count)`` samples to validation, chosen by
    a generator seeded with ``seed`` alone, so a resumed run, a torchrun run and a
    rerun all hold out the same images. ``fraction`` 0 holds out nothing.
    """
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"--val-fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    if fraction == 0.0:
        return np.arange(len(labels)), np.arange(0)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(fraction * len(members)))
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val))
    if len(val_idx) == 0 or len(val_idx) == len(labels):
        raise UsageError(
            f"--val-fraction {fraction} of {len(labels)} training images leaves an empty "
            "training or validation set; use more images or another fraction"
        )
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx, assume_unique=True)
    return train_idx, val_idx
