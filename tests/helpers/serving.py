"""Servers for tests: a repository exported from a run, `capsdeploy serve` as a process, the app
in a thread over test backends, and Triton's perf_analyzer."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import subprocess
import threading
from pathlib import Path

import numpy as np

from tests.helpers.wait import wait_until

INFER = "/v2/models/capsnet/infer"
PERF_ANALYZER = Path(__file__).resolve().parents[2] / ".tools" / "perf_analyzer" / "perf_analyzer"


def export_repo(run: Path, dest: Path, **batching) -> Path:
    from capsdeploy.export import ExportOptions
    from capsdeploy.export.triton_repo import export_triton
    from capsdeploy.repository import BatchingOptions

    export_triton(run, dest, ExportOptions(), BatchingOptions(**batching))
    return dest


def start_server(args, tmp: Path, timeout: float = 120, launcher=None, env_extra=None):
    """A server that stops at once on SIGTERM unless the test asks for a --drain-delay."""
    from capsdeploy.serve.process import ServerProcess

    args = [*args] if "--drain-delay" in map(str, args) else [*args, "--drain-delay", "0"]
    try:
        return ServerProcess.start(args, tmp, timeout, launcher, env_extra)
    except RuntimeError as e:
        raise AssertionError(str(e)) from None


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
    wait_until(lambda: server.started, timeout=30, interval=0.02, what="in-thread server start")
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", state
    finally:
        server.should_exit = True
        thread.join(30)


def run_perf_analyzer(binary: Path, *args, timeout: float = 180):
    """perf_analyzer ARGS with 1 s measurement windows; (exit code, stdout + stderr)."""
    # A shared CI machine is noisy: wide stability bounds so a run ends after a few windows.
    cmd = [str(binary), *map(str, args), "--measurement-interval", "1000", "--max-trials", "10"]
    cmd += ["--stability-percentage", "200"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def request(host_port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(host_port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def valid_body(n=1):
    x = np.random.default_rng(n).random((n, 1, 28, 28), dtype=np.float32)
    return json.dumps(
        {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
            ]
        }
    ).encode()


def digit_png(mnist_dir) -> bytes:
    """The first MNIST test digit as PNG bytes."""
    from PIL import Image

    from capsdeploy.data import load_split

    img = load_split("mnist", "t10k", mnist_dir, download=False, limit=1).images[0].reshape(28, 28)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()
