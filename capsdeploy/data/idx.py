"""Reader for the IDX files MNIST and Fashion-MNIST ship in (raw or gzipped)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ..errors import CapsDeployError

# Magic = 0x00 0x00 <type code> <number of dims>; only unsigned bytes are used here.
_UBYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes; validate magic, dims and length."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise CapsDeployError(f"{path}: file not found") from None
    except (OSError, EOFError) as e:
        raise CapsDeployError(
            f"{path}: cannot read ({e}); the file is corrupt or truncated, download it again"
        ) from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    if len(raw) < 4:
        raise CapsDeployError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or not 1 <= ndim <= 4:
        raise CapsDeployError(
            f"{name}: bad IDX magic 0x{raw[:4].hex()} (expected 0x000008NN, unsigned bytes); "
            "this is not an IDX image or label file"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CapsDeployError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise CapsDeployError(
            f"{name}: {what}: header says {dims} = {expected} bytes, file holds {got}; download it again"
        )
    # Copied: frombuffer views are read-only, and torch.from_numpy warns on those.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write uint8 data as IDX (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = struct.pack(">HBB", 0, _UBYTE, array.ndim)
    raw += struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if str(path).endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    from ..fileio import write_bytes_atomic

    write_bytes_atomic(path, raw)
