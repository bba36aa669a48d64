from pathlib import Path

import pytest

from tests.helpers import build_once
from tests.helpers.serving import PERF_ANALYZER, export_repo, start_server


@pytest.fixture(scope="session")
def tiny_repo(tiny_run, tmp_path_factory) -> Path:
    """tiny_run's repository, exported once per test run (xdist workers share it); tests serve
    it and read it, never change it."""
    folder = build_once(
        tmp_path_factory,
        "tiny-repo",
        lambda d: export_repo(tiny_run, d / "repo", preferred_batch_sizes=(4, 8)),
    )
    return folder / "repo"


@pytest.fixture(scope="module")
def server(tiny_repo, tmp_path_factory):
    srv = start_server([tiny_repo, "--engine", "ort"], tmp_path_factory.mktemp("srv"))
    yield srv
    code = srv.stop()
    assert code == 0, srv.log.read_text()


@pytest.fixture(scope="session")
def perf_analyzer() -> Path:
    """Triton's perf_analyzer (scripts/install_perf_analyzer.sh): CI must have it, elsewhere skip."""
    import os
    import subprocess

    if not PERF_ANALYZER.is_file():
        why = f"perf_analyzer not installed at {PERF_ANALYZER} (run scripts/install_perf_analyzer.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    probe = subprocess.run([str(PERF_ANALYZER), "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        why = f"perf_analyzer does not run: {(probe.stderr or probe.stdout).strip()[:300]}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return PERF_ANALYZER
