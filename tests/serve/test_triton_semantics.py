"""Where Triton's behaviour was checked against its sources and ours differed: each test here
failed on the old code (non-finite inputs refused, compute counts that disagreed under batching,
/v1/predict uncounted, timeouts over queue + compute with 504, request timeouts that lengthened
the default or applied with none)."""

import asyncio
import json
import threading
import time

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient

from tests.helpers.serving import INFER, request


def _stats(host_port, model="capsnet"):
    return httpclient.InferenceServerClient(host_port).get_inference_statistics(model)["model_stats"][0]


def _assert_counts_agree(stats):
    inf = stats["inference_stats"]
    counts = {
        k: inf[k]["count"] for k in ("success", "queue", "compute_input", "compute_infer", "compute_output")
    }
    assert len(set(counts.values())) == 1, counts
    executions = {
        k: sum(b[k]["count"] for b in stats["batch_stats"])
        for k in ("compute_input", "compute_infer", "compute_output")
    }
    assert set(executions.values()) == {stats["execution_count"]}, (executions, stats["execution_count"])
    assert (
        sum(b["batch_size"] * b["compute_infer"]["count"] for b in stats["batch_stats"])
        == stats["inference_count"]
    )


def test_non_finite_inputs_pass_through_and_json_nan_outputs_parse(server):
    """perf_analyzer's default data is random bits; Triton hands NaN and infinities to the model.
    The NaN that comes back in a JSON response is readable by tritonclient."""
    x = np.zeros((2, 1, 28, 28), np.float32)
    x[0] = np.nan
    x[1, 0, 0, 0] = np.inf
    c = httpclient.InferenceServerClient(server.host_port)
    inp = httpclient.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    r = c.infer("capsnet", [inp], outputs=[httpclient.InferRequestedOutput("scores", binary_data=False)])
    scores = r.as_numpy("scores")
    assert scores.shape == (2, 10) and np.isnan(scores[0]).all()


def test_a_model_can_opt_into_refusing_non_finite_inputs(tiny_repo):
    from capsdeploy.repository import BatchingOptions, model_config
    from capsdeploy.runtime.ort_backend import OrtBackend
    from capsdeploy.serve.models import REFUSE_NON_FINITE, _decl_of, serve_model
    from tests.helpers.serving import serve_in_thread

    backend = OrtBackend(tiny_repo / "capsnet" / "1" / "model.onnx")
    cfg = model_config(_decl_of("capsnet", "onnxruntime_onnx", backend), BatchingOptions())
    cfg.parameters[REFUSE_NON_FINITE].string_value = "true"
    model = serve_model("capsnet", "1", cfg, backend)
    x = np.zeros((1, 1, 28, 28), np.float32)
    x[0, 0, 3, 3] = np.nan
    body = json.dumps(
        {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": x.ravel().tolist()}
            ]
        }
    ).encode()
    with serve_in_thread({"capsnet": model}) as (hp, _):
        status, _, reply = request(hp, "POST", INFER, body)
        assert status == 400 and "NaN or infinite" in json.loads(reply)["error"]
        status, _, _ = request(hp, "POST", INFER, body.replace(b"NaN", b"0.5"))
        assert status == 200


def test_statistics_compute_counts_agree_under_batching(server):
    """Per request (inference_stats) every phase is counted once per successful request, and per
    execution (batch_stats) once per batch, as Triton keeps them; perf_analyzer aborts when the
    compute counts differ. The old code counted compute_infer per batch and the others per
    request, and never filled batch_stats' compute_input/output."""

    async def load():
        c = aioclient.InferenceServerClient(server.host_port, conn_limit=64)
        try:
            x = np.random.default_rng(2).random((1, 1, 28, 28), dtype=np.float32)

            async def one():
                inp = aioclient.InferInput("image", [1, 1, 28, 28], "FP32")
                inp.set_data_from_numpy(x)
                await c.infer("capsnet", [inp])

            await asyncio.gather(*(one() for _ in range(96)))
        finally:
            await c.close()

    done = threading.Event()
    snapshots = []

    def poll():
        while not done.is_set():
            snapshots.append(_stats(server.host_port))
            time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        asyncio.run(load())
    finally:
        done.set()
        poller.join()
    snapshots.append(_stats(server.host_port))
    for s in snapshots:  # every view a client can get, not only the final one
        _assert_counts_agree(s)
    assert snapshots[-1]["execution_count"] < snapshots[-1]["inference_stats"]["success"]["count"]


def test_v1_predict_is_counted_like_an_inference_request(server, mnist_dir):
    from tests.helpers.serving import digit_png

    before = _stats(server.host_port)
    status, _, _ = request(
        server.host_port, "POST", "/v1/predict", digit_png(mnist_dir), {"Content-Type": "image/png"}
    )
    assert status == 200
    after = _stats(server.host_port)
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    _assert_counts_agree(after)


def _slow_model(tiny_repo, **opts):
    """capsnet whose every execution takes 0.3 s, queue delay 0, the given BatchingOptions."""
    from capsdeploy.repository import BatchingOptions, model_config
    from capsdeploy.runtime.ort_backend import OrtBackend
    from capsdeploy.serve.models import _decl_of, serve_model

    class Slow(OrtBackend):
        def _infer(self, feeds):
            time.sleep(0.3)
            return super()._infer(feeds)

    backend = Slow(tiny_repo / "capsnet" / "1" / "model.onnx")
    config = model_config(_decl_of("capsnet", "onnxruntime_onnx", backend), BatchingOptions(max_queue_delay_us=0, **opts))
    return serve_model("capsnet", "1", config, backend)


def _first_runs_second_queues(model, timeout_us):
    """Two requests with ``timeout_us``: the first runs at once (0.3 s), the second waits in the
    queue behind it for about 0.25 s. Their (status, body) pairs."""
    from tests.helpers.serving import serve_in_thread, valid_body

    doc = json.loads(valid_body())
    doc["parameters"] = {"timeout": timeout_us}
    body = json.dumps(doc).encode()
    results = {}

    def send(i):
        status, _, reply = request(hp, "POST", INFER, body)
        results[i] = status, reply

    with serve_in_thread({"capsnet": model}) as (hp, _):
        first = threading.Thread(target=send, args=(0,))
        first.start()
        time.sleep(0.05)  # the first is running; the second waits in the queue
        send(1)
        first.join()
    return results[0], results[1]


def test_timeout_covers_the_queue_only(tiny_repo):
    """Triton expires a request only while it waits in the queue: one that starts at once runs
    to the end even past its timeout (the old code answered 504 after the timeout), and one
    still queued when its timeout passes gets UNAVAILABLE (503). The queue policy has a default
    (10 s): a shorter request timeout (100 ms) replaces it."""
    first, second = _first_runs_second_queues(_slow_model(tiny_repo, default_timeout_us=10_000_000), 100_000)
    assert first[0] == 200, first
    assert second[0] == 503 and json.loads(second[1])["error"] == "Request timeout expired"


def test_no_default_timeout_means_no_timeout_whatever_the_request_says(tiny_repo):
    """Triton (PolicyQueue::Enqueue): with default_timeout_microseconds 0 a request's own
    timeout is never applied: the queued request waits and succeeds."""
    first, second = _first_runs_second_queues(_slow_model(tiny_repo, default_timeout_us=0), 100_000)
    assert first[0] == 200 and second[0] == 200, (first, second)


def test_a_request_cannot_lengthen_the_default_timeout(tiny_repo):
    """A request timeout longer than the queue policy's default is not honoured: the default
    (100 ms) expires the queued request although it asked for 10 s."""
    first, second = _first_runs_second_queues(_slow_model(tiny_repo, default_timeout_us=100_000), 10_000_000)
    assert first[0] == 200, first
    assert second[0] == 503 and json.loads(second[1])["error"] == "Request timeout expired"


def test_queue_timeout_rule_is_tritons(tiny_repo):
    """ServedModel.timeout_s against Triton's rule, including no dynamic batching (the default
    scheduler ignores request timeouts) and allow_timeout_override false."""
    from capsdeploy.repository import BatchingOptions, model_config
    from capsdeploy.runtime.ort_backend import OrtBackend
    from capsdeploy.serve.models import _decl_of, serve_model

    backend = OrtBackend(tiny_repo / "capsnet" / "1" / "model.onnx")
    decl = _decl_of("capsnet", "onnxruntime_onnx", backend)

    def timeout(req_us, override=True, **opts):
        config = model_config(decl, BatchingOptions(**opts))
        if config.HasField("dynamic_batching"):
            config.dynamic_batching.default_queue_policy.allow_timeout_override = override
        model = serve_model("capsnet", "1", config, backend)
        try:
            return model.timeout_s(req_us)
        finally:
            model.close(0)

    assert timeout(None, default_timeout_us=2_000_000) == 2.0
    assert timeout(500_000, default_timeout_us=2_000_000) == 0.5  # shorter: replaces the default
    assert timeout(5_000_000, default_timeout_us=2_000_000) == 2.0  # longer: ignored
    assert timeout(500_000, default_timeout_us=0) is None  # no default: no timeout at all
    assert timeout(500_000, override=False, default_timeout_us=2_000_000) == 2.0
    assert timeout(500_000, dynamic_batching=False) is None  # default scheduler: none


def test_config_endpoint_returns_the_normalized_config(server):
    import tritonclient.grpc as grpcclient

    cfg = httpclient.InferenceServerClient(server.host_port).get_model_config("capsnet")
    assert cfg["backend"] == "onnxruntime" and cfg["version_policy"] == {"latest": {"num_versions": 1}}
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU" and cfg["instance_group"][0]["name"] == "capsnet_0"
    over_grpc = grpcclient.InferenceServerClient(server.grpc_host_port).get_model_config(
        "capsnet", as_json=True
    )
    assert over_grpc["config"]["instance_group"][0]["kind"] == "KIND_CPU"
    assert over_grpc["config"]["backend"] == "onnxruntime"


def test_metrics_on_their_own_port_as_triton_serves_them(server):
    """Triton serves Prometheus metrics on port 8002 at /metrics; so does serve (--metrics-port),
    beside /metrics on the HTTP port, from the same registry."""
    import urllib.request

    from tests.helpers.serving import valid_body

    assert request(server.host_port, "POST", INFER, valid_body())[0] == 200
    assert server.metrics_url and server.metrics_url.endswith("/metrics")
    own = urllib.request.urlopen(server.metrics_url, timeout=30).read().decode()
    assert 'nv_inference_count{model="capsnet",version="1"}' in own
    assert "capsdeploy_request_duration_seconds_bucket" in own
    _, _, beside = request(server.host_port, "GET", "/metrics")
    names = lambda text: {ln.split("{")[0] for ln in text.splitlines() if ln and not ln.startswith("#")}  # noqa: E731
    assert names(own) == names(beside.decode())
