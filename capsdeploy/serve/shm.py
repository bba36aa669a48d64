"""System shared memory as Triton's shared-memory extension defines it: a client creates a POSIX
shared-memory object (``shm_open``), registers it under a name with a byte range, and then
names the region (plus offset and byte size) instead of sending tensor bytes; outputs can be
written into a region the same way. Every access is checked against the registered range.

CUDA shared memory needs a GPU this server does not map: its status is empty, unregistering
succeeds (nothing is registered), registering is refused with a message.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from dataclasses import dataclass

SHM_DIR = "/dev/shm"  # where Linux keeps shm_open objects


class SharedMemoryError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


@dataclass
class Region:
    name: str
    key: str
    offset: int
    byte_size: int
    _map: mmap.mmap

    def status(self) -> dict:
        return {"name": self.name, "key": self.key, "offset": self.offset, "byte_size": self.byte_size}

    def view(self, offset: int, size: int) -> memoryview:
        return memoryview(self._map)[self.offset + offset : self.offset + offset + size]


class SharedMemoryRegistry:
    def __init__(self):
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        for what, value in (("offset", offset), ("byte_size", byte_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SharedMemoryError(f"{what} must be a non-negative integer, got {value!r}")
        if not isinstance(key, str) or not key.strip("/") or "/" in key.strip("/"):
            raise SharedMemoryError(
                f"key must name a POSIX shared-memory object (e.g. '/data0'), got {key!r}"
            )
        with self._lock:
            if name in self._regions:
                raise SharedMemoryError(
                    f"shared memory region {name!r} already in manager; unregister it first"
                )
            path = os.path.join(SHM_DIR, key.strip("/"))
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError as e:
                raise SharedMemoryError(
                    f"Unable to open shared memory region {key!r}: {e.strerror}"
                ) from None
            try:
                size = os.fstat(fd).st_size
                if offset + byte_size > size:
                    raise SharedMemoryError(
                        f"shared memory region {name!r}: offset {offset} + byte_size {byte_size} exceeds "
                        f"the {size} bytes of {key!r}"
                    )
                mapped = mmap.mmap(fd, size) if size else mmap.mmap(-1, 1)
            finally:
                os.close(fd)
            self._regions[name] = Region(name, key, offset, byte_size, mapped)

    def unregister(self, name: str | None = None) -> None:
        """One region, or every region (``None``); an unknown name is no error (Triton's rule)."""
        with self._lock:
            names = list(self._regions) if name is None else [name]
            for n in names:
                region = self._regions.pop(n, None)
                if region is not None:
                    # BufferError: a request still holds a view; the map closes when that is freed.
                    with contextlib.suppress(BufferError):
                        region._map.close()

    def status(self, name: str | None = None) -> list[dict]:
        with self._lock:
            if name is None:
                return [r.status() for r in self._regions.values()]
            if name not in self._regions:
                raise SharedMemoryError(f"Unable to find system shared memory region: {name!r}", 404)
            return [self._regions[name].status()]

    def _region(self, name, offset, size, what: str) -> Region:
        if not isinstance(name, str):
            raise SharedMemoryError(f"{what}: shared_memory_region must be a string")
        for label, value in (("shared_memory_offset", offset), ("shared_memory_byte_size", size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SharedMemoryError(f"{what}: {label} must be a non-negative integer, got {value!r}")
        region = self._regions.get(name)
        if region is None:
            raise SharedMemoryError(
                f"{what}: Unable to find shared memory region: {name!r}; register it first"
            )
        if offset + size > region.byte_size:
            raise SharedMemoryError(
                f"{what}: Invalid offset + byte size for shared memory region: {name!r} "
                f"({offset} + {size} > {region.byte_size})"
            )
        return region

    def read(self, name, offset, size, what: str) -> bytes:
        """A copy of ``size`` bytes at ``offset`` in region ``name`` (a request owns its inputs)."""
        with self._lock:
            region = self._region(name, offset, size, what)
            return bytes(region.view(offset, size))

    def write(self, name, offset, size, data: bytes, what: str) -> None:
        with self._lock:
            region = self._region(name, offset, size, what)
            if len(data) > size:
                raise SharedMemoryError(
                    f"{what}: {len(data)} bytes do not fit the {size} bytes given in region {name!r}"
                )
            region.view(offset, len(data))[:] = data


def cuda_register_refused(name: str) -> SharedMemoryError:
    return SharedMemoryError(
        f"cannot register CUDA shared memory region {name!r}: this server maps no GPU memory; "
        "use system shared memory (/v2/systemsharedmemory)",
        501,
    )
