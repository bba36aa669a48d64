"""Loading what `serve` serves: repositories, single model files, run directories; and the
start-up errors a user can cause (exit 2, one line, before anything listens)."""

import numpy as np
import pytest

from capsdeploy.cli.serve_cmd import load_model_or_run
from capsdeploy.repository import BatchingOptions
from capsdeploy.runtime.compare import DEFAULT_TOLERANCES, compare_outputs
from capsdeploy.serve.models import load_repository
from tests.helpers import capsdeploy


def _close(models):
    for m in models.values():
        m.close(0)


def test_repository_models_follow_their_configs(tiny_repo):
    models = load_repository(tiny_repo, "ort")
    try:
        caps = models["capsnet"]
        assert caps.batcher.max_batch_size == 64 and caps.batcher.preferred == [4, 8]
        assert caps.batcher.workers == 1 and caps.default_timeout_s == 30.0
        assert caps.metadata()["inputs"][0]["shape"] == [-1, 1, 28, 28]
    finally:
        _close(models)


def test_run_directory_on_torch_and_on_ort_agree(tiny_run):
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    poses = np.zeros((2, 10, 8), np.float32)
    poses[:, 2] = 0.1
    got = {}
    for engine in ("torch", "ort"):
        models, tmp = load_model_or_run(tiny_run, engine, BatchingOptions(instances=2))
        try:
            assert sorted(models) == ["capsnet", "capsnet_decoder"]
            assert models["capsnet"].batcher.workers == 2
            got[engine] = (
                models["capsnet"].batcher.infer({"image": x}),
                models["capsnet_decoder"].batcher.infer({"poses": poses}),
            )
        finally:
            _close(models)
            if tmp is not None:
                tmp.cleanup()
    result = compare_outputs(got["torch"][0], got["ort"][0], DEFAULT_TOLERANCES["fp32"])
    assert result.passed, result.failures
    np.testing.assert_allclose(got["torch"][1]["reconstruction"], got["ort"][1]["reconstruction"], atol=1e-5)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "REPOSITORY or --model"),
        (["no/such/repo"], "no such model repository"),
        (["--model", "missing.onnx"], "no such file"),
    ],
)
def test_serve_start_up_errors_exit_2(args, words):
    proc = capsdeploy("serve", *args, "--port", "0")
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_serve_engine_trt_without_tensorrt_exits_2_naming_it(tiny_repo):
    from capsdeploy.runtime.trt.environment import tensorrt_missing

    if not tensorrt_missing():
        pytest.skip("TensorRT and CUDA are present here")
    proc = capsdeploy("serve", tiny_repo, "--engine", "trt", "--port", "0")
    assert proc.returncode == 2 and "TensorRT" in proc.stderr and "Traceback" not in proc.stderr


def test_repository_with_a_broken_config_refuses_to_start(tiny_repo, tmp_path):
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(tiny_repo, copy)
    (copy / "capsnet" / "config.pbtxt").write_text('name: "capsnet"\nmax_batch_sise: 4\n')
    proc = capsdeploy("serve", copy, "--port", "0")
    assert proc.returncode == 2 and "max_batch_sise" in proc.stderr


def test_max_body_mb_flag_limits_request_bodies(tiny_repo, tmp_path):
    import http.client

    from tests.helpers.serving import start_server

    srv = start_server([tiny_repo, "--engine", "ort", "--max-body-mb", "0.001"], tmp_path)  # ~1 KB
    try:
        conn = http.client.HTTPConnection(srv.host_port, timeout=30)
        conn.request("POST", "/v2/models/capsnet/infer", body=b"{" + b" " * 5000 + b"}")
        r = conn.getresponse()
        assert r.status == 413 and b"limit" in r.read()
    finally:
        assert srv.stop() == 0
