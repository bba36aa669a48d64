"""Three replicas behind HAProxy, a closed-loop load at concurrency 32, and each replica
restarted with SIGTERM in turn (a Kubernetes rolling update): no request may fail. Then one
replica is SIGKILLed: the others carry the load (failures there are reported, not forbidden)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import IN_CI

ROOT = Path(__file__).resolve().parents[2]
# Run first and alone by scripts/test.sh, collecting this file only: three replicas, HAProxy and
# 32 client threads already fill two cores; the parallel run beside them would make it a test of
# the machine's load.
pytestmark = pytest.mark.exclusive


def load_script():
    spec = importlib.util.spec_from_file_location("rolling_restart", ROOT / "scripts/rolling_restart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    if shutil.which("haproxy") is None:
        if IN_CI:
            pytest.fail("CI=true but haproxy is missing (.ci/run installs it)")
        pytest.skip("the rolling-restart test needs haproxy (apt-get install haproxy)")
    from capsdeploy.export import ExportOptions
    from capsdeploy.export.triton_repo import export_triton
    from capsdeploy.repository import BatchingOptions

    repo = tmp_path_factory.mktemp("rolling") / "repo"
    export_triton(tiny_run, repo, ExportOptions(), BatchingOptions())
    script = load_script()
    serve_args = ["--engine", "ort", "--drain-delay", "1", "--grace", "20"]
    out = script.run(repo, 3, 32, baseline_s=5, rolling_s=30, sigkill_s=5, serve_args=serve_args)
    print(json.dumps(out, indent=2))
    return out


@pytest.mark.slow
def test_rolling_restart_under_load_loses_nothing(report):
    rolling = report["rolling"]
    assert rolling["exit_codes"] == [0, 0, 0]  # every replica drained and exited cleanly
    assert rolling["failed"] == 0, rolling["errors"]
    assert report["baseline"]["failed"] == 0, report["baseline"]["errors"]
    # the load really ran through the restarts, not around them
    assert rolling["requests"] > 10 * 32 and rolling["seconds"] >= 29


@pytest.mark.slow
def test_sigkill_of_one_replica_leaves_the_others_serving(report):
    assert report["sigkill"]["requests"] > 32
    assert report["after"]["failed"] == 0
    assert report["after"]["requests"] > 0


def test_the_load_counts_failures(tmp_path):
    """The harness itself: requests against a port nobody listens on are all counted as failed."""
    import numpy as np

    script = load_script()
    load = script.Load(f"127.0.0.1:{script.free_port()}", "capsnet", 2, np.zeros((1, 1, 28, 28), np.float32))
    import time

    with load:
        t0 = time.monotonic()
        time.sleep(0.5)
    w = load.window(t0, time.monotonic() + 1)
    assert w["requests"] > 0 and w["failed"] == w["requests"]
    assert w["errors"]


def test_a_request_belongs_to_the_phase_in_which_it_ended():
    """A request sent during the rolling phase and still in flight when the SIGKILL phase began
    was cut by the SIGKILL, not by the rolling restart: it counts in the phase where it ended.
    (Counted by its start, such a request, always on the replica killed, failed the rolling
    phase in about one run of three: HAProxy logged SD--, the response headers and no body.)"""
    import numpy as np

    script = load_script()
    load = script.Load("127.0.0.1:9", "capsnet", 1, np.zeros((1, 1, 28, 28), np.float32))
    load.records = [
        (0.5, 0.2, True, ""),  # within the rolling phase [0, 10)
        (9.98, 0.06, False, "HTTPParseError: Incomplete response."),  # in flight at the kill, t=10
        (10.5, 0.1, True, ""),
    ]
    rolling, sigkill = load.window(0, 10), load.window(10, 15)
    assert rolling["requests"] == 1 and rolling["failed"] == 0
    assert sigkill["requests"] == 2 and sigkill["failed"] == 1
