"""The serving image as a user runs it: a repository mounted read-only at /models, a read-only
root filesystem, a non-root user, no torch inside, V2 answers equal to the host's, and SIGTERM a
clean exit 0 within the grace period."""

from __future__ import annotations

import socket
import time
import urllib.request

import numpy as np
import pytest

from capsdeploy.data.idx import read_idx
from capsdeploy.export import ExportOptions
from capsdeploy.repository import BatchingOptions

from .conftest import Container, podman


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, container: Container, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if container.state().get("Status") not in ("running", "created", "configured"):
            break
        time.sleep(0.3)
    raise AssertionError(f"the container never became ready:\n{container.logs()}")


@pytest.fixture(scope="module")
def repo(tiny_run, tmp_path_factory):
    from capsdeploy.export.triton_repo import export_triton

    dest = tmp_path_factory.mktemp("image-repo") / "repo"
    export_triton(tiny_run, dest, ExportOptions(), BatchingOptions())
    # The image's user (uid 10001) reads the mounted files; pytest makes its folders 0700.
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def server_args(port: int, grpc_port: int | None = None) -> list:
    """`serve` arguments on the host network: every port chosen free, since two containers (and
    anything else on the machine) would otherwise both claim the defaults 8001 and 8002."""
    grpc_port = grpc_port or free_port()
    return [
        "/models",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--grpc-port",
        grpc_port,
        "--metrics-port",
        free_port(),
        "--drain-delay",
        "1",
        "--grace",
        "10",
    ]


@pytest.fixture(scope="module")
def served(image, repo):
    port, grpc_port = free_port(), free_port()
    c = Container(
        image, server_args(port, grpc_port), {repo: "/models:ro"}, extra=["--network", "host", "--read-only"]
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", c)
        yield c, f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
    finally:
        c.remove()


def test_image_answers_v2_as_the_host_does(served, repo, mnist_dir):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from capsdeploy.runtime.ort_backend import OrtBackend

    _, url, grpc_url = served
    pixels = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:16]
    x = (pixels.astype(np.float32) / 255.0)[:, None]
    host = OrtBackend(repo / "capsnet" / "1" / "model.onnx").infer({"image": x})
    client = httpclient.InferenceServerClient(url)
    inp = httpclient.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    result = client.infer("capsnet", [inp])
    for name in ("scores", "poses"):
        np.testing.assert_allclose(result.as_numpy(name), host[name], atol=1e-6, rtol=0)
    # The same over gRPC, Triton's GRPCInferenceService on the container's gRPC port.
    grpc = grpcclient.InferenceServerClient(grpc_url)
    ginp = grpcclient.InferInput("image", list(x.shape), "FP32")
    ginp.set_data_from_numpy(x)
    gresult = grpc.infer("capsnet", [ginp])
    for name in ("scores", "poses"):
        np.testing.assert_allclose(gresult.as_numpy(name), host[name], atol=1e-6, rtol=0)


def test_image_runs_as_non_root_with_a_read_only_root(served):
    c, _, _ = served
    assert c.exec("id", "-u", check=True).stdout.strip() == "10001"
    assert c.state()["Status"] == "running"
    write = c.exec("sh", "-c", "touch /opt/venv/x")
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    write_models = c.exec("sh", "-c", "touch /models/x")
    assert write_models.returncode != 0


def test_image_has_no_torch(image):
    probe = podman(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-c",
        "import importlib.util, onnxruntime; print(importlib.util.find_spec('torch') is None)",
    )
    assert probe.stdout.strip() == "True"


def test_sigterm_exits_0_within_the_grace_period(image, repo):
    port = free_port()
    c = Container(image, server_args(port), {repo: "/models:ro"}, extra=["--network", "host", "--read-only"])
    try:
        wait_ready(f"http://127.0.0.1:{port}", c)
        t0 = time.monotonic()
        podman("kill", "--signal", "TERM", c.name)
        podman("wait", c.name, timeout=60)
        took = time.monotonic() - t0
        state = c.state()
        assert state["ExitCode"] == 0, c.logs()
        assert took < 1 + 10, took  # --drain-delay + --grace
        assert "OOMKilled" not in state or not state["OOMKilled"]
    finally:
        c.remove()
