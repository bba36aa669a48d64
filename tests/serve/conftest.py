import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from capsdeploy.export import ExportOptions
from capsdeploy.repository import BatchingOptions


def export_repo(run: Path, dest: Path, **batching) -> Path:
    from capsdeploy.export.triton_repo import export_triton

    export_triton(run, dest, ExportOptions(), BatchingOptions(**batching))
    return dest


@pytest.fixture(scope="session")
def tiny_repo(tiny_run, tmp_path_factory) -> Path:
    return export_repo(tiny_run, tmp_path_factory.mktemp("repo") / "repo", preferred_batch_sizes=(4, 8))


class ServerProcess:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def start_server(args, tmp: Path, timeout: float = 90, launcher=None, env_extra=None) -> ServerProcess:
    """`capsdeploy serve ARGS --port 0` in a child process; returns once it listens.
    ``launcher``: the Python arguments that run the CLI (default ``-m capsdeploy``)."""
    log = tmp / f"serve-{time.monotonic_ns()}.log"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    err = open(log, "w")  # noqa: SIM115 - the child writes to it for its whole life
    cli = [
        *(launcher or ["-m", "capsdeploy"]),
        "serve",
        *map(str, args),
        "--port",
        "0",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(
        [sys.executable, *cli],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env=env,
    )
    found = {}

    def read():
        for line in proc.stdout:
            m = re.search(r"on (http://\S+)", line)
            if m and "url" not in found:
                found["url"] = m.group(1)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while "url" not in found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start (exit {proc.poll()}):\n{log.read_text()}")
        time.sleep(0.05)
    return ServerProcess(proc, found["url"], log)


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
