"""Build an expensive thing once per test run, also when pytest-xdist runs the session fixtures
once in every worker: the first worker builds it under a file lock in the folder all workers of
the run share; the others wait on the lock and reuse it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def build_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``build(folder)`` fills ``folder``; returns it. A build that raised is retried by the
    next caller (its half-written folder removed first)."""
    base = tmp_path_factory.getbasetemp()
    # A worker's base is pytest-N/popen-gwK/; a pytest that a test starts inherits the worker's
    # environment but has a base of its own, and must not share with anything.
    if os.environ.get("PYTEST_XDIST_WORKER") is None or not base.name.startswith("popen-"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    root = base.parent  # pytest-N/: this run's, shared by its workers
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
