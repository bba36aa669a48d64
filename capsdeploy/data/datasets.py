"""Find, download or render a dataset split and load it as an ImageSet.

Lookup order for file-backed datasets: ``data_dir``, ``$CAPSDEPLOY_DATA``, the
user cache dir, then system dirs (Debian's dataset-fashion-mnist). Each root is
tried as is and with the dataset's name appended.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import CapsDeployError, UsageError
from .download import download_file
from .idx import read_idx
from .imageset import ImageSet
from .registry import DATASETS, DatasetSpec, split_files
from .synthetic import render_digits

# Synthetic split sizes and seeds; any other split name renders SYNTHETIC_DEFAULT_SIZE images.
SYNTHETIC_SPLITS = {"train": (20000, 1), "t10k": (2000, 2), "calib": (1000, 3)}
SYNTHETIC_DEFAULT_SIZE = 2000


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}") from None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "capsdeploy" / "data"


def search_dirs(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> list[Path]:
    roots = []
    if data_dir:
        roots.append(Path(data_dir))
    if os.environ.get("CAPSDEPLOY_DATA"):
        roots.append(Path(os.environ["CAPSDEPLOY_DATA"]))
    roots.append(cache_dir())
    dirs = []
    for root in roots:
        dirs += [root, root / spec.name]
    return dirs + [Path(d) for d in spec.system_dirs]


def _find(stem: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for name in (stem + ".gz", stem):
            if (d / name).is_file():
                return d / name
    return None


def load_split(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    limit: int | None = None,
) -> ImageSet:
    """Load ``split`` of dataset ``name``; ``limit`` keeps the first N images."""
    spec = get_spec(name)
    if spec.synthetic:
        n, seed = SYNTHETIC_SPLITS.get(split, (SYNTHETIC_DEFAULT_SIZE, zlib.crc32(split.encode())))
        # Rendering is sequential from one generator, so the first N images are the same for any limit.
        images, labels = render_digits(min(n, limit or n), seed)
        return ImageSet(images, labels, spec.class_names, name, split)

    dirs = search_dirs(spec, data_dir)
    paths = []
    for stem in split_files(split):
        path = _find(stem, dirs)
        if path is None:
            path = _download_or_explain(spec, split, stem, dirs, data_dir, download)
        paths.append(path)
    images, labels = (read_idx(p) for p in paths)
    if images.ndim == 3:
        images = images[:, None]
    if labels.ndim != 1:
        raise CapsDeployError(f"{paths[1]}: expected a 1-D label file, got shape {labels.shape}")
    return ImageSet(images, labels.astype(np.int64), spec.class_names, name, split).head(limit)


def _download_or_explain(spec, split, stem, dirs, data_dir, download) -> Path:
    gz = stem + ".gz"
    dest = Path(data_dir) if data_dir else cache_dir() / spec.name
    if download and gz in spec.md5:
        try:
            return download_file(gz, spec.mirrors, spec.md5[gz], dest)
        except CapsDeployError as e:
            reason = f"download failed ({e})"
    elif gz not in spec.md5:
        reason = f"split {split!r} is not a standard {spec.name} file, so it cannot be downloaded"
    else:
        reason = "downloads are off"
    looked = ", ".join(str(d) for d in dirs)
    raise UsageError(
        f"{spec.name}: {gz} not found ({reason}). Put {gz} (or {stem}) in {dest}, "
        f"or pass --data-dir DIR / set CAPSDEPLOY_DATA. Looked in: {looked}"
    )
