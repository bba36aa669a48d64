"""Datasets (IDX files, downloads with checksums, a synthetic set), the validation
split, and the one NumPy/Pillow preprocessing module. No torch here: the
inference path imports this package."""

from .datasets import load_split
from .idx import read_idx, write_idx
from .imageset import ImageSet
from .registry import DATASETS
from .split import stratified_split

__all__ = ["DATASETS", "ImageSet", "load_split", "read_idx", "stratified_split", "write_idx"]
