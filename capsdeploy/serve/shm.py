"""System shared memory as Triton's shared-memory extension defines it: a client creates a POSIX
shared-memory object (``shm_open``), registers it under a name with a byte range, and then
names the region (plus offset and byte size) instead of sending tensor bytes; outputs can be
written into a region the same way. Every access is checked against the registered range.

Regions are read and written with ``pread``/``pwrite`` on a descriptor kept open, never mapped:
a client may shrink its object at any time, and a mapped access past the new end is a SIGBUS
that kills the server, while a short ``pread`` is an error we can answer (400). The object is
opened as glibc's ``shm_open`` opens it (``O_NOFOLLOW``), and must be a regular file, so a key
cannot reach a file outside /dev/shm through a symlink.

A request resolves its output regions when it is parsed and keeps the ``Region`` objects: an
unregister (or a re-register of the name over another object) while it runs neither fails it
nor redirects its bytes; the descriptor closes when the last holder lets go (Triton defers an
unregister while a region is in use).

CUDA shared memory needs a GPU this server does not map: its status is empty, unregistering
succeeds (nothing is registered), registering is refused with a message.
"""

from __future__ import annotations

import os
import stat
import threading
import weakref
from typing import Any

SHM_DIR = "/dev/shm"  # where Linux keeps shm_open objects


class SharedMemoryError(Exception):
    """``status``: the HTTP status; ``grpc_code``: the gRPC status name where Triton's differs
    from the one the HTTP status maps to (a taken name: HTTP 400, gRPC ALREADY_EXISTS)."""

    def __init__(self, message: str, status: int = 400, grpc_code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.grpc_code = message, status, grpc_code


class Region:
    """One registered range of a shared-memory object, by an open descriptor. The descriptor
    closes when the Region is no longer referenced: by the registry (until unregistered) and by
    every request that resolved it."""

    def __init__(self, name: str, key: str, offset: int, byte_size: int, fd: int):
        self.name, self.key, self.offset, self.byte_size, self.fd = name, key, offset, byte_size, fd
        self._closer = weakref.finalize(self, os.close, fd)

    def status(self) -> dict:
        return {"name": self.name, "key": self.key, "offset": self.offset, "byte_size": self.byte_size}

    def check(self, offset, size, what: str) -> None:
        for label, value in (("shared_memory_offset", offset), ("shared_memory_byte_size", size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SharedMemoryError(f"{what}: {label} must be a non-negative integer, got {value!r}")
        if offset >= self.byte_size and (offset or size):  # Triton: an offset must lie inside the region
            raise SharedMemoryError(
                f"{what}: Invalid offset for shared memory region: {self.name!r} "
                f"(offset {offset}, the region holds {self.byte_size} bytes)"
            )
        if offset + size > self.byte_size:
            raise SharedMemoryError(
                f"{what}: Invalid offset + byte size for shared memory region: {self.name!r} "
                f"({offset} + {size} > {self.byte_size})"
            )

    def _shrunk(self, what: str, need: int) -> SharedMemoryError:
        return SharedMemoryError(
            f"{what}: shared memory region {self.name!r} ({self.key!r}) is shorter than registered: "
            f"it holds {os.fstat(self.fd).st_size} bytes, the access needs {need}"
        )

    def read(self, offset: int, size: int, what: str) -> bytes:
        """A copy of ``size`` bytes at ``offset`` (a request owns its inputs)."""
        self.check(offset, size, what)
        start = self.offset + offset
        chunks, got = [], 0
        while got < size:
            chunk = os.pread(self.fd, size - got, start + got)
            if not chunk:
                raise self._shrunk(what, start + size)
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def write(self, offset: int, size: int, data: bytes, what: str) -> None:
        self.check(offset, size, what)
        if len(data) > size:
            raise SharedMemoryError(
                f"{what}: {len(data)} bytes do not fit the {size} bytes given in region {self.name!r}"
            )
        start = self.offset + offset
        # pwrite past the end would grow the client's object; refuse as a mapped write would fail.
        if os.fstat(self.fd).st_size < start + len(data):
            raise self._shrunk(what, start + len(data))
        view, done = memoryview(data), 0
        while done < len(data):
            done += os.pwrite(self.fd, view[done:], start + done)


class SharedMemoryRegistry:
    def __init__(self):
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: Any, offset: Any, byte_size: Any) -> None:
        """Register ``name``; key, offset and byte_size come from a client's request body and are
        checked here, whatever their JSON type."""
        for what, value in (("offset", offset), ("byte_size", byte_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SharedMemoryError(f"{what} must be a non-negative integer, got {value!r}")
        obj = key.strip("/") if isinstance(key, str) else ""
        # One path component naming an object in /dev/shm: no '/', '.', '..' or NUL.
        if not obj or "/" in obj or obj in (".", "..") or "\0" in obj:
            raise SharedMemoryError(
                f"key must name a POSIX shared-memory object (e.g. '/data0'), got {key!r}"
            )
        with self._lock:
            if name in self._regions:
                raise SharedMemoryError(
                    f"shared memory region {name!r} already in manager; unregister it first",
                    grpc_code="ALREADY_EXISTS",
                )
            try:
                fd = os.open(os.path.join(SHM_DIR, obj), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as e:
                raise SharedMemoryError(
                    f"Unable to open shared memory region {key!r}: {e.strerror}"
                ) from None
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise SharedMemoryError(
                        f"Unable to open shared memory region {key!r}: not a shared memory object"
                    )
                if offset + byte_size > st.st_size:
                    raise SharedMemoryError(
                        f"shared memory region {name!r}: offset {offset} + byte_size {byte_size} exceeds "
                        f"the {st.st_size} bytes of {key!r}"
                    )
            except BaseException:
                os.close(fd)
                raise
            self._regions[name] = Region(name, key, offset, byte_size, fd)

    def unregister(self, name: str | None = None) -> None:
        """One region, or every region (``None``); an unknown name is no error (Triton's rule).
        A request that resolved the region keeps it (and its descriptor) until it is done."""
        with self._lock:
            names = list(self._regions) if name is None else [name]
            for n in names:
                self._regions.pop(n, None)

    def status(self, name: str | None = None) -> list[dict]:
        with self._lock:
            if name is None:
                return [r.status() for r in self._regions.values()]
            if name not in self._regions:
                raise SharedMemoryError(f"Unable to find system shared memory region: {name!r}", 404)
            return [self._regions[name].status()]

    def resolve(self, name, offset, size, what: str) -> Region:
        """The region ``name`` now, with ``offset``/``size`` checked against its range."""
        if not isinstance(name, str):
            raise SharedMemoryError(f"{what}: shared_memory_region must be a string")
        with self._lock:
            region = self._regions.get(name)
        if region is None:
            raise SharedMemoryError(
                f"{what}: Unable to find shared memory region: {name!r}; register it first"
            )
        region.check(offset, size, what)
        return region

    def read(self, name, offset, size, what: str) -> bytes:
        return self.resolve(name, offset, size, what).read(offset, size, what)

    def write(self, name, offset, size, data: bytes, what: str) -> None:
        self.resolve(name, offset, size, what).write(offset, size, data, what)


def cuda_register_refused(name: str) -> SharedMemoryError:
    return SharedMemoryError(
        f"cannot register CUDA shared memory region {name!r}: this server maps no GPU memory; "
        "use system shared memory (/v2/systemsharedmemory)",
        501,
    )
