"""The server over HTTP, spoken to by tritonclient (Triton's reference client) and raw HTTP."""

import asyncio
import gzip
import http.client
import io
import json
import threading
import time
import zlib

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from PIL import Image

from capsdeploy.data import load_split
from capsdeploy.runtime.compare import DEFAULT_TOLERANCES, compare_outputs
from tests.helpers import wait_until
from tests.helpers.serving import INFER, digit_png, request, valid_body


def assert_still_serves(host_port):
    status, _, body = request(host_port, "POST", "/v2/models/capsnet/infer", valid_body())
    assert status == 200, body


def test_health_metadata_config_and_stats(server):
    c = httpclient.InferenceServerClient(server.host_port)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("capsnet")
    meta = c.get_server_metadata()
    assert {"binary_tensor_data", "statistics", "model_configuration"} <= set(meta["extensions"])
    m = c.get_model_metadata("capsnet")
    assert m["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert [o["name"] for o in m["outputs"]] == ["scores", "poses"] and m["versions"] == ["1"]
    assert c.get_model_metadata("capsnet", model_version="1")["name"] == "capsnet"
    cfg = c.get_model_config("capsnet")
    assert cfg["max_batch_size"] == 64 and isinstance(
        cfg["dynamic_batching"]["max_queue_delay_microseconds"], int
    )
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    dec = c.get_model_metadata("capsnet_decoder")
    assert dec["inputs"][0]["name"] == "poses" and dec["outputs"][0]["shape"] == [-1, 784]
    stats = c.get_inference_statistics("capsnet")["model_stats"][0]
    assert {"success", "fail", "queue", "compute_input", "compute_infer", "compute_output"} <= set(
        stats["inference_stats"]
    )


@pytest.mark.parametrize("binary", [False, True])
def test_infer_matches_pytorch_on_real_digits(server, tiny_run, mnist_dir, binary):
    from capsdeploy.runtime.torch_backend import TorchBackend

    pixels = load_split("mnist", "t10k", mnist_dir, download=False, limit=16).images
    x = (pixels.astype(np.float32) / 255.0).reshape(16, 1, 28, 28)
    c = httpclient.InferenceServerClient(server.host_port)
    inp = httpclient.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("scores", "poses")]
    r = c.infer("capsnet", [inp], outputs=outs, request_id="parity-1")
    assert r.get_response()["id"] == "parity-1" and r.get_response()["model_version"] == "1"
    got = {n: r.as_numpy(n) for n in ("scores", "poses")}
    ref = TorchBackend(tiny_run).infer({"image": x})
    result = compare_outputs(ref, got, DEFAULT_TOLERANCES["fp32"])
    assert result.passed, result.failures


def test_decoder_model_matches_pytorch_decoder(server, tiny_run):
    from capsdeploy.runtime.torch_backend import TorchDecoderBackend

    poses = np.zeros((2, 10, 8), np.float32)
    poses[0, 3] = np.linspace(-0.3, 0.3, 8)
    poses[1, 7] = 0.2
    c = httpclient.InferenceServerClient(server.host_port)
    inp = httpclient.InferInput("poses", list(poses.shape), "FP32")
    inp.set_data_from_numpy(poses)
    got = c.infer("capsnet_decoder", [inp]).as_numpy("reconstruction")
    ref = TorchDecoderBackend(tiny_run).infer({"poses": poses})["reconstruction"]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert not np.allclose(got[0], got[1])  # different poses decode differently


def test_aio_client_and_compression(server):
    async def run():
        c = aioclient.InferenceServerClient(server.host_port)
        try:
            x = np.random.default_rng(3).random((2, 1, 28, 28), dtype=np.float32)
            inp = aioclient.InferInput("image", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            plain = await c.infer("capsnet", [inp])
            zipped = await c.infer(
                "capsnet", [inp], request_compression_algorithm="gzip", response_compression_algorithm="gzip"
            )
            deflated = await c.infer(
                "capsnet",
                [inp],
                request_compression_algorithm="deflate",
                response_compression_algorithm="deflate",
            )
            return plain.as_numpy("scores"), zipped.as_numpy("scores"), deflated.as_numpy("scores")
        finally:
            await c.close()

    a, b, d = asyncio.run(run())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, d)


def test_200_concurrent_requests_are_batched(server):
    sync = httpclient.InferenceServerClient(server.host_port)
    before = sync.get_inference_statistics("capsnet")["model_stats"][0]

    async def run():
        c = aioclient.InferenceServerClient(server.host_port, conn_limit=200)
        try:
            x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)

            async def one():
                inp = aioclient.InferInput("image", [1, 1, 28, 28], "FP32")
                inp.set_data_from_numpy(x)
                return (await c.infer("capsnet", [inp])).as_numpy("scores")

            return await asyncio.gather(*(one() for _ in range(200)))
        finally:
            await c.close()

    results = asyncio.run(run())
    assert len(results) == 200 and all(r.shape == (1, 10) for r in results)
    after = sync.get_inference_statistics("capsnet")["model_stats"][0]
    requests = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    executions = after["execution_count"] - before["execution_count"]
    assert requests == 200
    assert executions < requests, f"{executions} executions for {requests} requests: nothing was batched"
    _, _, metrics = request(server.host_port, "GET", "/metrics")
    text = metrics.decode()
    for name in (
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_pending_request_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "capsdeploy_request_duration_seconds_bucket",
        "capsdeploy_batch_size_bucket",
    ):
        assert f"\n{name}{{" in text, name
    exec_line = next(
        line for line in text.splitlines() if line.startswith('nv_inference_exec_count{model="capsnet"')
    )
    assert float(exec_line.split()[-1]) == after["execution_count"]


def test_binary_request_without_content_type_and_raw_body(server):
    x = np.random.default_rng(5).random((2, 1, 28, 28), dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": [2, 1, 28, 28],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    status, headers, body = request(
        server.host_port,
        "POST",
        "/v2/models/capsnet/infer",
        header + x.tobytes(),
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    n = int(headers["inference-header-content-length"])
    doc = json.loads(body[:n])
    sizes = [o["parameters"]["binary_data_size"] for o in doc["outputs"]]
    assert sum(sizes) == len(body) - n
    scores = np.frombuffer(body[n : n + sizes[0]], np.float32).reshape(2, 10)
    status, headers, raw = request(
        server.host_port,
        "POST",
        "/v2/models/capsnet/infer",
        x[:1].tobytes(),  # a raw body is one row (Triton: batch 1)
        {"Inference-Header-Content-Length": "0"},
    )
    assert status == 200
    m = int(headers["inference-header-content-length"])
    np.testing.assert_allclose(
        np.frombuffer(raw[m : m + 40], np.float32).reshape(1, 10), scores[:1], atol=1e-6
    )


def test_predict_image_raw_and_multipart(server, mnist_dir):
    png = digit_png(mnist_dir)
    status, _, body = request(
        server.host_port, "POST", "/v1/predict?top=3", png, {"Content-Type": "image/png"}
    )
    assert status == 200, body
    doc = json.loads(body)
    assert len(doc["predictions"]) == 3 and len(doc["capsule_lengths"]) == 10
    lengths = [p["capsule_length"] for p in doc["predictions"]]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] == max(doc["capsule_lengths"])
    boundary = "xYzBoundary"
    multipart = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _, body2 = request(
        server.host_port,
        "POST",
        "/v1/predict?top=3",
        multipart,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200 and json.loads(body2)["capsule_lengths"] == doc["capsule_lengths"]


def _nan_body():
    x = np.zeros((1, 1, 28, 28), np.float32)
    x[0, 0, 3, 3] = np.nan
    return json.dumps(
        {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": x.ravel().tolist()}
            ]
        }
    ).encode()


def _binary(size, extra=b"", declared=None):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": [1, 1, 28, 28],
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    return header + b"\0" * 3136 + extra, {
        "Inference-Header-Content-Length": str(declared if declared is not None else len(header))
    }


def _binary_with_data():
    header = json.dumps({"inputs": [{**IMG, "parameters": {"binary_data_size": 3136}}]}).encode()
    return header + b"\0" * 3136, {"Inference-Header-Content-Length": str(len(header))}


def _huge_png() -> bytes:
    """20000 x 20000 black pixels: 400 KB on the wire, 400 MB decoded (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    return buf.getvalue()


def _json(inputs, **doc):
    return json.dumps({"inputs": inputs, **doc}).encode()


IMG = {"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}
BAD = [
    ("not json", INFER, b"{not json", {}, 400),
    ("unknown model", "/v2/models/nope/infer", valid_body(), {}, 404),
    ("unknown version", "/v2/models/capsnet/versions/7/infer", valid_body(), {}, 404),
    ("unknown input", INFER, _json([{**IMG, "name": "img"}]), {}, 400),
    ("missing input", INFER, _json([]), {}, 400),
    ("duplicate input", INFER, _json([IMG, IMG]), {}, 400),
    ("wrong datatype", INFER, _json([{**IMG, "datatype": "INT32"}]), {}, 400),
    ("fp16 in json", INFER, _json([{**IMG, "datatype": "FP16"}]), {}, 400),
    ("shape vs data count", INFER, _json([{**IMG, "shape": [2, 1, 28, 28]}]), {}, 400),
    ("non-batch dim", INFER, _json([{**IMG, "shape": [1, 1, 28, 27], "data": [0.0] * 756}]), {}, 400),
    ("too many rows", INFER, _json([{**IMG, "shape": [65, 1, 28, 28], "data": [0.0] * 784 * 65}]), {}, 400),
    ("data and binary_data_size", INFER, *_binary_with_data(), 400),
    ("raw body of two rows", INFER, b"\0" * 3136 * 2, {"Inference-Header-Content-Length": "0"}, 400),
    ("triton_ parameter", INFER, _json([IMG], parameters={"triton_x": 1}), {}, 400),
    ("timeout above uint64", INFER, _json([IMG], parameters={"timeout": 2**64}), {}, 400),
    ("header longer than body", INFER, *_binary(3136, declared=10**6), 400),
    ("blobs do not add up", INFER, *_binary(3136, extra=b"\0" * 8), 400),
    ("negative binary size", INFER, *_binary(-4), 400),
    ("absurd binary size", INFER, *_binary(10**15), 400),
    ("empty body", INFER, b"", {}, 400),
    ("not an image", "/v1/predict", b"GIF89a-not-really", {"Content-Type": "image/png"}, 400),
    ("empty upload", "/v1/predict", b"", {}, 400),
    ("unknown content-encoding", INFER, valid_body(), {"Content-Encoding": "br"}, 501),
    ("corrupt gzip", INFER, b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"}, 400),
    ("bad timeout", INFER, _json([IMG], parameters={"timeout": "soon"}), {}, 400),
    ("deeply nested json", INFER, b"[" * 100_000, {}, 400),
    (
        "deeply nested data",
        INFER,
        b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": '
        + b"[" * 100_000
        + b"]}]}",
        {},
        400,
    ),
    ("json far larger than the model needs", INFER, _json([{**IMG, "data": [0.0] * 3_000_000}]), {}, 413),
    (
        "classification extension",
        INFER,
        _json([IMG], outputs=[{"name": "scores", "parameters": {"classification": 3}}]),
        {},
        400,
    ),
    (
        "gzip with trailing bytes",
        INFER,
        gzip.compress(valid_body()) + b"junk",
        {"Content-Encoding": "gzip"},
        400,
    ),
    ("huge image", "/v1/predict", _huge_png(), {"Content-Type": "image/png"}, 400),
    ("multipart without boundary", "/v1/predict", b"--x\r\n", {"Content-Type": "multipart/form-data"}, 400),
]


@pytest.mark.parametrize(("what", "path", "body", "headers", "status"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_4xx_and_the_server_keeps_serving(server, what, path, body, headers, status):
    got, _, reply = request(server.host_port, "POST", path, body, headers)
    assert got == status, reply
    assert json.loads(reply)["error"]
    assert_still_serves(server.host_port)


def test_failures_are_counted_by_reason(server):
    before = httpclient.InferenceServerClient(server.host_port).get_inference_statistics("capsnet")
    request(server.host_port, "POST", INFER, b"{not json")
    after = httpclient.InferenceServerClient(server.host_port).get_inference_statistics("capsnet")
    fail = lambda s: s["model_stats"][0]["inference_stats"]["fail"]["count"]  # noqa: E731
    assert fail(after) == fail(before) + 1
    _, _, metrics = request(server.host_port, "GET", "/metrics")
    assert 'nv_inference_request_failure{model="capsnet",reason="OTHER",version="1"}' in metrics.decode()


def test_gzip_and_deflate_bodies_from_raw_http(server):
    body = valid_body(2)
    for enc, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        status, headers, reply = request(
            server.host_port, "POST", INFER, data, {"Content-Encoding": enc, "Accept-Encoding": enc}
        )
        assert status == 200 and headers["content-encoding"] == enc
        doc = json.loads(gzip.decompress(reply) if enc == "gzip" else zlib.decompress(reply))
        assert doc["outputs"][0]["shape"] == [2, 10]


# -- servers over purpose-built backends: queue limits, timeouts, engine failures -------
@pytest.fixture
def slow_model(tiny_repo):
    """capsnet on ONNX Runtime, with a 1 s queue delay and room for one queued request."""
    from capsdeploy.repository import BatchingOptions, model_config
    from capsdeploy.runtime.ort_backend import OrtBackend
    from capsdeploy.serve.models import _decl_of, serve_model

    backend = OrtBackend(tiny_repo / "capsnet" / "1" / "model.onnx")
    opts = BatchingOptions(max_queue_size=1, max_queue_delay_us=1_000_000)
    return serve_model(
        "capsnet", "1", model_config(_decl_of("capsnet", "onnxruntime_onnx", backend), opts), backend
    )


def test_full_queue_answers_503_with_retry_after_at_once(slow_model):
    from tests.helpers.serving import serve_in_thread

    with serve_in_thread({"capsnet": slow_model}) as (hp, _):
        first = {}
        t = threading.Thread(target=lambda: first.update(r=request(hp, "POST", INFER, valid_body())))
        t.start()
        wait_until(lambda: slow_model.pending() >= 1, timeout=10, what="the first request queued")
        t0 = time.monotonic()
        status, headers, body = request(hp, "POST", INFER, valid_body())
        assert status == 503 and headers["retry-after"] == "1", body
        assert time.monotonic() - t0 < 0.5  # refused at once, not after the queue delay
        t.join(10)
        assert first["r"][0] == 200


def test_request_timeout_parameter(slow_model):
    """A request that expires in the queue gets Triton's UNAVAILABLE (503, "Request timeout
    expired"), not the old 504."""
    from tests.helpers.serving import serve_in_thread

    with serve_in_thread({"capsnet": slow_model}) as (hp, _):
        doc = json.loads(valid_body())
        doc["parameters"] = {"timeout": 20_000}  # 20 ms, well under the 1 s queue delay
        status, _, body = request(hp, "POST", INFER, json.dumps(doc).encode())
        assert status == 503, body
        assert json.loads(body)["error"] == "Request timeout expired"


def test_backend_error_fails_only_that_request(tiny_repo):
    from capsdeploy.repository import BatchingOptions, model_config
    from capsdeploy.runtime.ort_backend import OrtBackend
    from capsdeploy.serve.models import _decl_of, serve_model
    from tests.helpers.serving import serve_in_thread

    class Flaky(OrtBackend):
        """Fails on a marked input, the way an engine fails on a bad kernel."""

        def _infer(self, feeds):
            if feeds["image"][0, 0, 0, 0] == 0.5:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return super()._infer(feeds)

    backend = Flaky(tiny_repo / "capsnet" / "1" / "model.onnx")
    opts = BatchingOptions(max_queue_delay_us=0)
    model = serve_model(
        "capsnet", "1", model_config(_decl_of("capsnet", "onnxruntime_onnx", backend), opts), backend
    )
    with serve_in_thread({"capsnet": model}) as (hp, _):
        bad = json.loads(valid_body())
        bad["inputs"][0]["data"][0] = 0.5
        status, _, body = request(hp, "POST", INFER, json.dumps(bad).encode())
        assert status == 500 and "illegal memory access" in json.loads(body)["error"]
        assert_still_serves(hp)
        _, _, metrics = request(hp, "GET", "/metrics")
        assert (
            'nv_inference_request_failure{model="capsnet",reason="BACKEND",version="1"} 1.0'
            in metrics.decode()
        )


def test_body_limit_is_413(tiny_repo, slow_model):
    from tests.helpers.serving import serve_in_thread

    with serve_in_thread({"capsnet": slow_model}, max_body_bytes=1000) as (hp, _):
        status, _, body = request(hp, "POST", INFER, valid_body())
        assert status == 413 and "limit" in json.loads(body)["error"]
        bomb = gzip.compress(b" " * 100_000)  # small on the wire, large inflated
        status, _, _ = request(hp, "POST", INFER, bomb, {"Content-Encoding": "gzip"})
        assert status == 413
        multipart = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n' + b"\0" * 5000
        )
        status, _, body = request(
            hp, "POST", "/v1/predict", multipart, {"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert status == 413 and "limit" in json.loads(body)["error"]


def test_sigterm_turns_ready_off_without_reraising():
    import signal

    import uvicorn

    from capsdeploy.serve.app import ServerState
    from capsdeploy.serve.server import DrainingServer

    state = ServerState({})
    srv = DrainingServer(uvicorn.Config(lambda *a: None), state)
    srv.handle_exit(signal.SIGTERM, None)
    assert state.ready is False and srv.should_exit
    assert signal.SIGTERM not in srv._captured_signals  # uvicorn would re-raise it: exit 143, not 0


def test_sigterm_under_load_answers_every_accepted_request(tiny_repo, tmp_path):
    from tests.helpers.serving import start_server

    srv = start_server(
        [
            "--model",
            tiny_repo / "capsnet" / "1" / "model.onnx",
            "--engine",
            "ort",
            "--max-queue-delay-us",
            "400000",
            "--log-level",
            "info",  # the access log: which requests the server read
        ],
        tmp_path,
    )
    results, errors = [], []

    def client():
        try:
            results.append(request(srv.host_port, "POST", INFER, valid_body())[0])
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(24)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while True:  # SIGTERM once requests are queued, waiting for their batch
        _, _, m = request(srv.host_port, "GET", "/metrics")
        line = next(x for x in m.decode().splitlines() if x.startswith("nv_inference_pending_request_count"))
        if float(line.split()[-1]) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    code = srv.stop()
    for t in threads:
        t.join(30)
    assert code == 0, srv.log.read_text()
    # Each request either was accepted (and then answered 200) or found the listener closed:
    # refused, or reset while it still sat in the kernel's accept queue when the listener closed
    # (seen once under a parallel test run), a request the server never read. The server's access
    # log proves the difference: every request it read was answered, and answered 200.
    assert results and all(s == 200 for s in results), results
    assert all(isinstance(e, (ConnectionRefusedError, ConnectionResetError)) for e in errors), errors
    assert len(results) >= 4
    read = [line for line in srv.log.read_text().splitlines() if f'"path": "{INFER}"' in line]
    assert len(read) == len(results) and all('"status": 200' in line for line in read), read


def test_serving_a_repository_never_imports_torch(tiny_repo, tmp_path):
    """The inference path of a torch-free install: `serve REPO --engine ort` with torch
    unimportable answers V2 requests and /v1/predict."""
    from tests.helpers import torch_blocked
    from tests.helpers.serving import start_server

    code, env, modules = torch_blocked(tmp_path)
    srv = start_server(
        [tiny_repo, "--engine", "ort"],
        tmp_path,
        launcher=["-c", code],
        env_extra={"PYTHONPATH": env["PYTHONPATH"]},
    )
    try:
        assert_still_serves(srv.host_port)
    finally:
        assert srv.stop() == 0, srv.log.read_text()
    assert "torch" not in json.loads(modules.read_text())


def test_accepted_connections_have_nagle_off():
    """A response goes out as two writes (headers, body); with Nagle on, the body waited for
    the client's delayed ACK (measured: 44 ms per request instead of 3). asyncio sets
    TCP_NODELAY only on sockets whose proto is TCP, and accepted sockets inherit it."""
    import socket

    from capsdeploy.serve.server import bind

    listener = bind("127.0.0.1", 0)
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        assert listener.proto == socket.IPPROTO_TCP and accepted.proto == socket.IPPROTO_TCP
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for s in (client, accepted, listener):
            s.close()


def test_every_response_carries_a_request_id(server):
    """The client's own x-request-id comes back; without one, each response gets a fresh id."""
    _, headers, _ = request(server.host_port, "POST", INFER, valid_body(), {"x-request-id": "mine-7"})
    assert headers["x-request-id"] == "mine-7"
    made = {request(server.host_port, "GET", "/v2/health/ready")[1]["x-request-id"] for _ in range(3)}
    made.add(request(server.host_port, "POST", INFER, valid_body())[1]["x-request-id"])
    assert len(made) == 4 and all(len(rid) >= 16 for rid in made), made


def test_server_process_retries_when_a_chosen_port_is_taken_before_it_binds(tiny_repo, tmp_path, monkeypatch):
    """free_port() releases the port it found; another process (a parallel test) can take it before
    the server binds it. ServerProcess then starts again on fresh ports instead of failing."""
    import socket

    from capsdeploy.serve import process

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    ports = iter([busy])  # the first port chosen (for --grpc-port) is already in use
    real = process.free_port
    monkeypatch.setattr(process, "free_port", lambda host="127.0.0.1": next(ports, None) or real(host))
    try:
        srv = process.ServerProcess.start([tiny_repo, "--engine", "ort", "--drain-delay", "0"], tmp_path)
    finally:
        taken.close()
    try:
        assert srv.grpc_url and srv.grpc_url.rsplit(":", 1)[1] != str(busy)
        assert request(srv.host_port, "GET", "/v2/health/ready")[0] == 200
    finally:
        assert srv.stop() == 0
    assert len(list(tmp_path.glob("serve-*.log"))) == 2, "one failed start, then one that served"


def test_accept_encoding_q_values(server):
    body = valid_body()
    for accept, expected in (
        ("gzip;q=0, identity", None),
        ("x-gzip-nope", None),
        ("deflate;q=0.5, gzip;q=0.9", "gzip"),
    ):
        status, headers, reply = request(server.host_port, "POST", INFER, body, {"Accept-Encoding": accept})
        assert status == 200 and headers.get("content-encoding") == expected, (accept, headers)
        assert headers["vary"] == "Accept-Encoding"


def test_unbatched_and_backend_style_configs(tiny_repo, tmp_path):
    """max_batch_size 0 (the shape is the whole tensor, nothing is batched) and the
    `backend: "onnxruntime"` spelling Triton recommends today."""
    import shutil

    from capsdeploy.serve.models import load_repository
    from tests.helpers.serving import serve_in_thread

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    shutil.rmtree(repo / "capsnet")
    (repo / "capsnet_decoder" / "config.pbtxt").write_text(
        'name: "capsnet_decoder"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'
        'input { name: "poses" data_type: TYPE_FP32 dims: [-1, 10, 8] }\n'
        'output { name: "reconstruction" data_type: TYPE_FP32 dims: [-1, 784] }\n'
    )
    models = load_repository(repo, "ort")
    with serve_in_thread(models) as (hp, _):
        _, _, meta = request(hp, "GET", "/v2/models/capsnet_decoder")
        assert json.loads(meta)["inputs"][0]["shape"] == [-1, 10, 8]
        doc = {"inputs": [{"name": "poses", "datatype": "FP32", "shape": [3, 10, 8], "data": [0.0] * 240}]}
        status, _, body = request(hp, "POST", "/v2/models/capsnet_decoder/infer", json.dumps(doc).encode())
        assert status == 200 and json.loads(body)["outputs"][0]["shape"] == [3, 784]
        doc["inputs"][0]["shape"] = [1, 3, 10, 8]
        status, _, _ = request(hp, "POST", "/v2/models/capsnet_decoder/infer", json.dumps(doc).encode())
        assert status == 400


def test_sigterm_drain_delay_closes_keep_alive_connections_cleanly(tiny_repo, tmp_path):
    """During --drain-delay the server is not ready but still answers, telling keep-alive
    clients to reconnect (Connection: close) instead of closing connections under them."""
    import signal

    from tests.helpers.serving import start_server

    srv = start_server([tiny_repo, "--engine", "ort", "--drain-delay", "2", "--grace", "5"], tmp_path)
    conn = http.client.HTTPConnection(srv.host_port, timeout=30)
    conn.request("POST", INFER, body=valid_body())
    first = conn.getresponse()
    assert first.status == 200 and first.getheader("connection") != "close"
    first.read()
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    conn.request("POST", INFER, body=valid_body())  # the same keep-alive connection
    second = conn.getresponse()
    assert second.status == 200 and second.getheader("connection") == "close"
    second.read()
    status, headers, _ = request(srv.host_port, "GET", "/v2/health/ready")
    assert status == 503 and headers.get("connection") == "close"
    assert srv.proc.wait(30) == 0
    assert time.monotonic() - t0 >= 1.5  # it kept serving through the delay
