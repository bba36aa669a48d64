"""The suite's own machinery: how xdist workers split it, and fixtures built once per run."""

from pathlib import Path

import pytest

from tests.helpers import build_once, wait_until
from tests.helpers.workers import FIRST, SAME_WORKER, unit_of

ROOT = Path(__file__).resolve().parents[1]


def test_grouped_files_exist_and_are_one_unit():
    for path in SAME_WORKER:  # a renamed file would silently leave its group
        assert (ROOT / path).is_file(), path
    assert len({unit_of(f"{path}::test_x[1]") for path in SAME_WORKER}) == 1
    assert unit_of("tests/cli/test_cli.py::test_a[x::y]") == unit_of("tests/cli/test_cli.py::test_b")
    assert unit_of("tests/cli/test_cli.py::test_b") == "tests/cli/test_cli.py"
    for unit in FIRST:
        assert unit in SAME_WORKER.values() or (ROOT / unit).is_file(), unit


class _Factory:
    """tmp_path_factory as an xdist worker sees it: its base is pytest-N/popen-gwK/."""

    def __init__(self, run: Path, worker: str):
        self.base = run / f"popen-{worker}"
        self.base.mkdir(parents=True, exist_ok=True)

    def getbasetemp(self) -> Path:
        return self.base


def test_build_once_shares_between_workers_and_retries_a_failed_build(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    builds = []

    def build(folder: Path):
        builds.append(folder)
        if len(builds) == 1:
            (folder / "half").write_text("x")
            raise RuntimeError("first build fails")
        (folder / "made").write_text("ok")

    gw0, gw1 = _Factory(tmp_path, "gw0"), _Factory(tmp_path, "gw1")
    with pytest.raises(RuntimeError):
        build_once(gw0, "thing", build)
    first = build_once(gw1, "thing", build)  # retried, from an empty folder
    assert build_once(gw0, "thing", build) == first and len(builds) == 2
    assert sorted(p.name for p in first.iterdir()) == ["made"]


def test_wait_until_returns_the_value_or_fails_naming_what():
    calls = iter([0, 0, 7])
    assert wait_until(lambda: next(calls), timeout=5, interval=0) == 7
    with pytest.raises(AssertionError, match="the flag not reached"):
        wait_until(lambda: False, timeout=0.05, what="the flag")
