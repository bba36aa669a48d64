"""The gRPC front end (Triton's GRPCInferenceService) spoken to by tritonclient.grpc: sync, aio
and streaming give what HTTP gives, bad requests get INVALID_ARGUMENT and the server keeps
serving, message sizes follow --max-body-mb, and SIGTERM drains gRPC as it drains HTTP."""

import asyncio
import queue
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.utils import InferenceServerException

from capsdeploy.data import load_split
from tests.helpers import wait_until
from tests.helpers.serving import INFER, request, valid_body

OUTPUTS = ("scores", "poses")


@pytest.fixture(scope="module")
def digits(mnist_dir_module):
    pixels = load_split("mnist", "t10k", mnist_dir_module, download=False, limit=16).images
    return (pixels.astype(np.float32) / 255.0).reshape(16, 1, 28, 28)


@pytest.fixture(scope="module")
def mnist_dir_module():
    from tests.helpers import IN_CI, SHARED_MNIST

    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        if IN_CI:
            pytest.fail(f"CI=true but the real MNIST files are missing from {SHARED_MNIST}")
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture(scope="module")
def http_reference(server, digits):
    c = httpclient.InferenceServerClient(server.host_port)
    inp = httpclient.InferInput("image", list(digits.shape), "FP32")
    inp.set_data_from_numpy(digits)
    r = c.infer("capsnet", [inp])
    return {n: r.as_numpy(n) for n in OUTPUTS}


def _grpc_input(x, mod=grpcclient):
    inp = mod.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def _close(got, want):
    for n in OUTPUTS:
        assert got[n].shape == want[n].shape
        np.testing.assert_allclose(got[n], want[n], atol=1e-6, rtol=0)


def test_grpc_sync_matches_http_on_real_digits(server, digits, http_reference):
    c = grpcclient.InferenceServerClient(server.grpc_host_port)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("capsnet")
    assert not c.is_model_ready("nope")
    meta = c.get_model_metadata("capsnet", as_json=True)
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": ["-1", "1", "28", "28"]}]
    assert "system_shared_memory" in c.get_server_metadata(as_json=True)["extensions"]
    assert c.get_model_config("capsnet").config.max_batch_size == 64
    assert {m.name for m in c.get_model_repository_index().models} == {"capsnet", "capsnet_decoder"}
    r = c.infer("capsnet", [_grpc_input(digits)], request_id="g1")
    assert r.get_response().id == "g1"
    _close({n: r.as_numpy(n) for n in OUTPUTS}, http_reference)
    # One requested output only, and typed contents (not raw) for the input.
    req_out = [grpcclient.InferRequestedOutput("scores")]
    r1 = c.infer("capsnet", [_grpc_input(digits[:2])], outputs=req_out)
    assert r1.as_numpy("poses") is None
    np.testing.assert_allclose(r1.as_numpy("scores"), http_reference["scores"][:2], atol=1e-6, rtol=0)


def test_grpc_typed_contents_match_raw(server, digits, http_reference):
    """ModelInfer with InferTensorContents (fp32_contents) instead of raw_input_contents."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_host_port)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    req = pb.ModelInferRequest(model_name="capsnet")
    t = req.inputs.add(name="image", datatype="FP32", shape=list(digits[:4].shape))
    t.contents.fp32_contents.extend(digits[:4].ravel().tolist())
    resp = stub.ModelInfer(req)
    names = [o.name for o in resp.outputs]
    scores = np.frombuffer(resp.raw_output_contents[names.index("scores")], np.float32).reshape(4, 10)
    np.testing.assert_allclose(scores, http_reference["scores"][:4], atol=1e-6, rtol=0)
    channel.close()


def test_grpc_aio_matches_http(server, digits, http_reference):
    async def run():
        c = grpcaio.InferenceServerClient(server.grpc_host_port)
        try:
            results = await asyncio.gather(
                *(c.infer("capsnet", [_grpc_input(digits[i : i + 1], grpcaio)]) for i in range(16))
            )
        finally:
            await c.close()
        return {n: np.concatenate([r.as_numpy(n) for r in results]) for n in OUTPUTS}

    _close(asyncio.run(run()), http_reference)


def test_grpc_streaming_matches_http(server, digits, http_reference):
    c = grpcclient.InferenceServerClient(server.grpc_host_port)
    answers: queue.Queue = queue.Queue()
    c.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i in range(16):
            c.async_stream_infer("capsnet", [_grpc_input(digits[i : i + 1])], request_id=str(i))
        bad = grpcclient.InferInput("image", [1, 1, 28, 27], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 1, 28, 27), np.float32))
        c.async_stream_infer("capsnet", [bad], request_id="bad")
        got, errors = {}, []
        for _ in range(17):
            result, error = answers.get(timeout=60)
            if error is not None:
                errors.append(error)
            else:
                got[int(result.get_response().id)] = result
    finally:
        c.stop_stream()
    assert len(errors) == 1 and "does not fit" in str(errors[0])  # the stream stayed open
    _close({n: np.concatenate([got[i].as_numpy(n) for i in range(16)]) for n in OUTPUTS}, http_reference)


def _bad_requests():
    """(what, ModelInferRequest, a fragment of the message): the HTTP bad-input cases that have a
    gRPC form."""
    img = dict(name="image", datatype="FP32", shape=[1, 1, 28, 28])
    raw = np.zeros((1, 1, 28, 28), np.float32).tobytes()

    def req(inputs, raws=(raw,), outputs=(), **params):
        r = pb.ModelInferRequest(model_name="capsnet")
        for spec in inputs:
            t = r.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
            for k, v in spec.get("parameters", {}).items():
                if isinstance(v, str):
                    t.parameters[k].string_param = v
                else:
                    t.parameters[k].int64_param = v
            if "data" in spec:
                t.contents.fp32_contents.extend(spec["data"])
        r.raw_input_contents.extend(raws)
        for name, p in outputs:
            o = r.outputs.add(name=name)
            for k, v in p.items():
                o.parameters[k].int64_param = v
        for k, v in params.items():
            r.parameters[k].int64_param = v
        return r

    return [
        ("unknown input", req([{**img, "name": "img"}]), "unknown input 'img'"),
        ("missing input", req([], raws=()), "`inputs` must be a non-empty list"),
        ("duplicate input", req([img, img], raws=(raw, raw)), "given twice"),
        ("wrong datatype", req([{**img, "datatype": "INT32"}]), "datatype 'INT32', the model takes FP32"),
        (
            "fp16 typed contents",
            req([{**img, "datatype": "FP16", "data": [0.0] * 784}], raws=()),
            "FP16 has no typed contents",
        ),
        ("shape vs raw size", req([{**img, "shape": [2, 1, 28, 28]}]), "needs 6272 bytes"),
        ("shape vs data count", req([{**img, "data": [0.0] * 10}], raws=()), "holds 784 values, `data` has 10"),
        ("non-batch dim", req([{**img, "shape": [1, 1, 28, 27]}]), "does not fit the model's"),
        ("too many rows", req([{**img, "shape": [65, 1, 28, 28]}], raws=(raw * 65,)), "max_batch_size"),
        ("raw contents for more inputs than take them", req([img], raws=(raw, raw)), "raw_input_contents holds 2"),
        ("data and raw", req([{**img, "data": [0.0] * 784}]), "raw_input_contents holds 1 tensors for 0"),
        ("triton_ parameter", req([img], triton_x=1), "reserved for Triton"),
        ("unknown output", req([img], outputs=[("nope", {})]), "unknown output 'nope'"),
        (
            "classification extension",
            req([img], outputs=[("scores", {"classification": 3})]),
            "classification extension is not supported",
        ),
        (
            "shm byte size without region",
            req([{**img, "parameters": {"shared_memory_byte_size": 3136}}], raws=()),
            "shared_memory_byte_size without shared_memory_region",
        ),
        (
            "shm offset without region",
            req([{**img, "parameters": {"shared_memory_offset": 0}}], raws=()),
            "shared_memory_offset without shared_memory_region",
        ),
        (
            "unregistered shm region",
            req(
                [{**img, "parameters": {"shared_memory_region": "nope", "shared_memory_byte_size": 3136}}],
                raws=(),
            ),
            "Unable to find shared memory region: 'nope'",
        ),
        ("negative timeout", req([img], timeout=-1), "timeout must be microseconds"),
        ("negative dimension", req([{**img, "shape": [-1, 1, 28, 28]}]), "negative dimension"),
        ("empty batch", req([{**img, "shape": [0, 1, 28, 28]}], raws=(b"",)), "the batch is empty"),
        ("no data at all", req([img], raws=()), "give `data`, parameters.binary_data_size or a shared memory region"),
    ]


def test_bad_grpc_requests_get_invalid_argument_and_the_server_keeps_serving(server):
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_host_port)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    good = pb.ModelInferRequest(model_name="capsnet")
    good.inputs.add(name="image", datatype="FP32", shape=[1, 1, 28, 28])
    good.raw_input_contents.append(np.zeros((1, 1, 28, 28), np.float32).tobytes())
    http = httpclient.InferenceServerClient(server.host_port)

    def failures():
        return http.get_inference_statistics("capsnet")["model_stats"][0]["inference_stats"]["fail"]["count"]

    before = failures()
    for what, bad, fragment in _bad_requests():
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, e.value.details())
        assert fragment in e.value.details(), (what, e.value.details())
        assert len(stub.ModelInfer(good).raw_output_contents) == 2, what
    unknown = pb.ModelInferRequest(model_name="nope")
    unknown.CopyFrom(good)
    unknown.model_name = "nope"
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(unknown)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()
    # The failures are counted as HTTP's are: each bad request once (the unknown model has no
    # statistics of its own to count in).
    assert failures() - before == len(_bad_requests())


def test_grpc_message_limit_follows_max_body_mb(tiny_repo, tmp_path):
    from tests.helpers.serving import start_server

    srv = start_server([tiny_repo, "--engine", "ort", "--max-body-mb", "0.1"], tmp_path)
    try:
        c = grpcclient.InferenceServerClient(srv.grpc_host_port)
        big = np.zeros((64, 1, 28, 28), np.float32)  # 200 KB > 0.1 MB
        with pytest.raises(InferenceServerException) as e:
            c.infer("capsnet", [_grpc_input(big)])
        assert "RESOURCE_EXHAUSTED" in str(e.value.status())
        assert c.infer("capsnet", [_grpc_input(big[:2])]).as_numpy("scores").shape == (2, 10)
    finally:
        assert srv.stop() == 0


def test_grpc_port_zero_disables_grpc(tiny_repo, tmp_path):
    from tests.helpers.serving import start_server

    srv = start_server([tiny_repo, "--engine", "ort", "--grpc-port", "0"], tmp_path)
    try:
        assert srv.grpc_url is None
        status, _, _ = request(srv.host_port, "POST", INFER, valid_body())
        assert status == 200
    finally:
        assert srv.stop() == 0


def test_sigterm_under_grpc_load_answers_every_accepted_request(tiny_repo, tmp_path):
    """24 requests accepted and queued (a 2 s queue delay holds them), then SIGTERM: the gRPC
    listener closes, and every accepted request is still answered before the exit (0)."""
    from tests.helpers.serving import start_server

    srv = start_server(
        [
            "--model",
            tiny_repo / "capsnet" / "1" / "model.onnx",
            "--engine",
            "ort",
            "--max-queue-delay-us",
            "2000000",
        ],
        tmp_path,
    )
    x = np.zeros((1, 1, 28, 28), np.float32)
    results, errors = [], []

    def client():
        c = grpcclient.InferenceServerClient(srv.grpc_host_port)
        try:
            results.append(c.infer("capsnet", [_grpc_input(x)]).as_numpy("scores").shape)
        except InferenceServerException as e:
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(24)]
    for t in threads:
        t.start()

    def pending() -> float:
        _, _, m = request(srv.host_port, "GET", "/metrics")
        line = next(x for x in m.decode().splitlines() if x.startswith("nv_inference_pending_request_count"))
        return float(line.split()[-1])

    # SIGTERM once all are queued
    wait_until(lambda: pending() == 24, timeout=20, interval=0.01, what="all 24 requests in the queue")
    code = srv.stop()
    for t in threads:
        t.join(30)
    assert code == 0, srv.log.read_text()
    assert not errors, [str(e) for e in errors]
    assert len(results) == 24 and all(s == (1, 10) for s in results)
    c = grpcclient.InferenceServerClient(srv.grpc_host_port)
    with pytest.raises(InferenceServerException):  # and the listener is gone
        c.is_server_live()


@pytest.mark.parametrize("flag", ["--grpc-port", "--metrics-port"])
def test_a_taken_grpc_or_metrics_port_exits_2_naming_the_flag(tiny_repo, flag):
    import socket

    from tests.helpers import capsdeploy

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        other = "--metrics-port" if flag == "--grpc-port" else "--grpc-port"
        proc = capsdeploy("serve", tiny_repo, "--engine", "ort", "--port", 0, flag, port, other, 0)
    assert proc.returncode == 2 and flag in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_sigterm_drain_delay_turns_grpc_readiness_off_while_serving(tiny_repo, tmp_path):
    """During --drain-delay gRPC says not ready (load balancers stop routing) yet still answers;
    then its listener closes with HTTP's and the process exits 0."""
    import signal

    from tests.helpers.serving import start_server

    srv = start_server([tiny_repo, "--engine", "ort", "--drain-delay", "2"], tmp_path)
    c = grpcclient.InferenceServerClient(srv.grpc_host_port)
    assert c.is_server_ready()
    srv.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: not c.is_server_ready(), timeout=10, interval=0.02, what="readiness off")
    x = np.zeros((1, 1, 28, 28), np.float32)
    assert c.infer("capsnet", [_grpc_input(x)]).as_numpy("scores").shape == (1, 10)
    assert srv.proc.wait(30) == 0, srv.log.read_text()


def test_raw_input_contents_go_to_the_inputs_without_contents_or_shared_memory():
    """Triton (infer_handler.cc) hands raw_input_contents out in order, only to inputs that have
    neither typed contents nor a shared-memory region; too few or too many raws is
    INVALID_ARGUMENT. The old code matched them to inputs by position."""
    from capsdeploy.serve.grpc_server import request_doc
    from capsdeploy.serve.protocol import ProtocolError

    def req(raws):
        r = pb.ModelInferRequest(model_name="m")
        a = r.inputs.add(name="a", datatype="FP32", shape=[1, 2])
        a.parameters["shared_memory_region"].string_param = "r"
        a.parameters["shared_memory_byte_size"].int64_param = 8
        r.inputs.add(name="b", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([1.0, 2.0])
        r.inputs.add(name="c", datatype="FP32", shape=[1, 2])
        r.inputs.add(name="d", datatype="FP32", shape=[1, 2])
        r.raw_input_contents.extend(raws)
        return r

    doc, raws = request_doc(req([b"c" * 8, b"d" * 8]))
    assert [i["name"] for i in doc["inputs"]] == ["a", "b", "c", "d"]
    assert raws == [None, None, b"c" * 8, b"d" * 8]
    with pytest.raises(ProtocolError, match="raw_input_contents"):
        request_doc(req([b"c" * 8]))  # d has no data
    with pytest.raises(ProtocolError, match="raw_input_contents"):
        request_doc(req([b"c" * 8, b"d" * 8, b"x" * 8]))  # one left over


def test_typed_contents_are_checked_against_the_shape_before_they_are_converted():
    """Too many rows, or a count the shape contradicts, is refused while building the request
    document, before the values become an array (the old code built a Python list of them
    first); accepted values come out as one numpy array."""
    from capsdeploy.serve.grpc_server import request_doc
    from capsdeploy.serve.protocol import ProtocolError

    def req(rows, n):
        r = pb.ModelInferRequest(model_name="capsnet")
        r.inputs.add(name="image", datatype="FP32", shape=[rows, 1, 28, 28]).contents.fp32_contents.extend(
            np.zeros(n, np.float32)
        )
        return r

    with pytest.raises(ProtocolError, match="max_batch_size"):
        request_doc(req(65, 65 * 784), max_rows=64)
    with pytest.raises(ProtocolError, match="holds 784 values, `data` has 10"):
        request_doc(req(1, 10), max_rows=64)
    doc, _ = request_doc(req(2, 2 * 784), max_rows=64)
    assert isinstance(doc["inputs"][0]["data"], np.ndarray) and doc["inputs"][0]["data"].size == 2 * 784


def test_stream_ends_when_the_request_iterator_fails():
    """A stream whose incoming side raises (a client reset) answers the requests already taken
    and then ends; the old code's reader died without its end marker and the stream waited
    forever."""
    from capsdeploy.serve.dataplane import DataPlane
    from capsdeploy.serve.grpc_server import Servicer

    async def requests():
        for i in range(3):
            yield pb.ModelInferRequest(model_name="nope", id=str(i))  # each answered with an error
        raise ConnectionResetError("client went away")

    async def collect():
        return [r async for r in Servicer(DataPlane({})).ModelStreamInfer(requests(), None)]

    answers = asyncio.run(asyncio.wait_for(collect(), 10))
    assert sorted(a.infer_response.id for a in answers) == ["0", "1", "2"]
    assert all("unknown model" in a.error_message for a in answers)


def test_stream_bounds_its_requests_in_flight(monkeypatch):
    """One stream cannot queue an unbounded number of requests: the reader stops taking new
    ones while STREAM_IN_FLIGHT are unanswered (gRPC flow control then holds the client)."""
    from capsdeploy.serve import grpc_server
    from capsdeploy.serve.dataplane import DataPlane

    monkeypatch.setattr(grpc_server, "STREAM_IN_FLIGHT", 2)
    running, peak = 0, 0

    class Slow(grpc_server.Servicer):
        async def _infer(self, request):
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            return pb.ModelInferResponse(id=request.id)

    async def requests():
        for i in range(20):
            yield pb.ModelInferRequest(model_name="m", id=str(i))

    async def collect():
        return [r async for r in Slow(DataPlane({})).ModelStreamInfer(requests(), None)]

    answers = asyncio.run(asyncio.wait_for(collect(), 10))
    assert len(answers) == 20 and peak == 2
