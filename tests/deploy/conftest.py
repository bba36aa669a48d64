"""Fixtures for the deployment tests: the serving image (built once per session with
scripts/build_image.sh) and a way to run it. They need root, podman and runc (and debootstrap
where no base image exists yet); .ci/run installs them. Outside CI they skip when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.helpers import IN_CI, build_once

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("CAPSDEPLOY_TEST_IMAGE", "capsdeploy:test")


def podman_env() -> dict:
    # The sandbox's settings (no ulimit raising, cgroupfs, runc) unless the caller chose a config.
    return {
        **os.environ,
        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(ROOT / "deploy/containers.conf")),
    }


def podman(*args, check=True, timeout=120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["podman", *map(str, args)], capture_output=True, text=True, env=podman_env(), timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr}")
    return proc


def require(tools: list[str], why: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    reason = None
    if missing:
        reason = f"{why} needs {', '.join(missing)} (apt-get install {' '.join(missing)})"
    elif os.geteuid() != 0:
        reason = f"{why} needs root (podman with runc as root, as CI runs it)"
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> str:
    """scripts/build_image.sh's image: built here, base from debootstrap unless one exists; once
    per test run, whichever xdist worker needs it first (two builds of one tag would race)."""
    require(["podman", "runc", "debootstrap"], "the image tests")
    build_once(tmp_path_factory, "image", lambda _folder: build_image())
    return IMAGE


def build_image() -> None:
    proc = subprocess.run(
        ["bash", "scripts/build_image.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**podman_env(), "IMAGE": IMAGE},
        timeout=900,
    )
    assert proc.returncode == 0, f"build_image.sh failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.startswith(IMAGE) and " MB " in proc.stdout, proc.stdout  # it prints the size


class Container:
    """One detached container; removed at the end whatever happened."""

    def __init__(self, image: str, args: list, volumes: dict[Path, str], extra: list | None = None):
        self.name = f"capsdeploy-test-{uuid.uuid4().hex[:8]}"
        mounts = [x for host, spec in volumes.items() for x in ("-v", f"{host}:{spec}")]
        podman("run", "-d", "--name", self.name, *(extra or []), *mounts, image, *map(str, args))

    def exec(self, *cmd, check=False) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *cmd, check=check)

    def state(self) -> dict:
        import json

        return json.loads(podman("inspect", self.name).stdout)[0]["State"]

    def logs(self) -> str:
        proc = podman("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
