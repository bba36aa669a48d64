"""Serving TensorRT plans from a Triton repository. Skipped, with the reason, where CUDA or
TensorRT is missing."""

import numpy as np
import pytest

from tests.helpers import capsdeploy


@pytest.mark.gpu
def test_plan_repository_served_on_trt_matches_pytorch(trt_ready, tiny_run, tmp_path):
    import tritonclient.http as httpclient

    from capsdeploy.runtime.compare import DEFAULT_TOLERANCES, compare_outputs
    from capsdeploy.runtime.torch_backend import TorchBackend
    from tests.helpers.serving import start_server

    repo = tmp_path / "repo"
    capsdeploy(
        "export",
        "--format",
        "triton",
        "--platform",
        "trt",
        "--checkpoint",
        tiny_run,
        "--output",
        repo,
        "--max-batch-size",
        16,
        check=True,
    )
    assert (repo / "capsnet" / "1" / "model.plan").is_file()
    assert 'platform: "tensorrt_plan"' in (repo / "capsnet" / "config.pbtxt").read_text()
    srv = start_server([repo, "--engine", "trt"], tmp_path)
    try:
        x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
        c = httpclient.InferenceServerClient(srv.host_port)
        inp = httpclient.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        r = c.infer("capsnet", [inp])
        got = {n: r.as_numpy(n) for n in ("scores", "poses")}
    finally:
        assert srv.stop() == 0
    result = compare_outputs(TorchBackend(tiny_run).infer({"image": x}), got, DEFAULT_TOLERANCES["fp32"])
    assert result.passed, result.failures
