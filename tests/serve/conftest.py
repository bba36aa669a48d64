import contextlib
import threading
import time
from pathlib import Path

import pytest

from capsdeploy.export import ExportOptions
from capsdeploy.repository import BatchingOptions
from capsdeploy.serve.process import ServerProcess


def export_repo(run: Path, dest: Path, **batching) -> Path:
    from capsdeploy.export.triton_repo import export_triton

    export_triton(run, dest, ExportOptions(), BatchingOptions(**batching))
    return dest


@pytest.fixture(scope="session")
def tiny_repo(tiny_run, tmp_path_factory) -> Path:
    return export_repo(tiny_run, tmp_path_factory.mktemp("repo") / "repo", preferred_batch_sizes=(4, 8))


def start_server(args, tmp: Path, timeout: float = 120, launcher=None, env_extra=None) -> ServerProcess:
    """A server that stops at once on SIGTERM unless the test asks for a --drain-delay."""
    args = [*args] if "--drain-delay" in map(str, args) else [*args, "--drain-delay", "0"]
    try:
        return ServerProcess.start(args, tmp, timeout, launcher, env_extra)
    except RuntimeError as e:
        raise AssertionError(str(e)) from None


@pytest.fixture(scope="module")
def server(tiny_repo, tmp_path_factory):
    srv = start_server([tiny_repo, "--engine", "ort"], tmp_path_factory.mktemp("srv"))
    yield srv
    code = srv.stop()
    assert code == 0, srv.log.read_text()


@contextlib.contextmanager
def serve_in_thread(models: dict, max_body_bytes: int = 64 << 20):
    """The app on uvicorn in a thread of this process (for servers over test backends)."""
    import uvicorn

    from capsdeploy.serve.app import ServerState, create_app
    from capsdeploy.serve.server import bind

    state = ServerState(models, max_body_bytes=max_body_bytes)
    app = create_app(state, on_shutdown=lambda: [m.close(0) for m in models.values()])
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "in-thread server did not start"
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", state
    finally:
        server.should_exit = True
        thread.join(30)


PERF_ANALYZER = Path(__file__).resolve().parents[2] / ".tools" / "perf_analyzer" / "perf_analyzer"


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


def run_perf_analyzer(binary: Path, *args, timeout: float = 180):
    """perf_analyzer ARGS with 1 s measurement windows; (exit code, stdout + stderr)."""
    import subprocess

    # A shared CI machine is noisy: wide stability bounds so a run ends after a few windows.
    cmd = [str(binary), *map(str, args), "--measurement-interval", "1000", "--max-trials", "10"]
    cmd += ["--stability-percentage", "200"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr
