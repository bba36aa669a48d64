"""Datasets: IDX files, downloads with checksums, a synthetic set, augmentation."""

from .augment import random_shifts, shift_images
from .datasets import load_split
from .idx import read_idx, write_idx
from .imageset import ImageSet
from .registry import DATASETS

__all__ = [
    "DATASETS",
    "ImageSet",
    "load_split",
    "random_shifts",
    "read_idx",
    "shift_images",
    "write_idx",
]
