"""Fetch dataset files over the network, verified by checksum, written atomically."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import CapsDeployError
from ..fileio import atomic_path, hash_file


def download_file(name: str, mirrors: tuple[str, ...], md5: str, dest_dir: Path) -> Path:
    """Try each mirror in turn; keep the file only when its md5 matches."""
    dest = dest_dir / name
    errors = []
    for mirror in mirrors:
        url = mirror + name
        try:
            with atomic_path(dest) as tmp:
                _fetch(url, tmp)
                got = hash_file(tmp, "md5")
                if got != md5:
                    raise CapsDeployError(f"{url}: md5 {got} != expected {md5}")
            return dest
        except (urllib.error.URLError, OSError, CapsDeployError) as e:
            errors.append(f"{url}: {e}")
    raise CapsDeployError(f"could not download {name}: " + "; ".join(errors))


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=30) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False) as bar:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                out.write(chunk)
                bar.update(len(chunk))
