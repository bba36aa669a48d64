"""TensorRT and CUDA runs. Skipped, with the reason, where CUDA or TensorRT is missing."""

import json

import numpy as np
import pytest

from capsdeploy.export import ExportOptions, export_onnx
from capsdeploy.runtime.trt.environment import tensorrt_status
from tests.helpers import capsdeploy


@pytest.fixture
def trt_ready():
    _, why = tensorrt_status()
    if why:
        pytest.skip(why)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_trt_engine_matches_pytorch(trt_ready, tiny_run, tmp_path, precision):
    export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions(precision=precision, calib_samples=64))
    cache = tmp_path / "engines"
    args = [
        "export",
        "--format",
        "trt",
        "--model",
        tmp_path / "m.onnx",
        "-o",
        tmp_path / "m.plan",
        "--max-batch",
        64,
        "--timing-cache",
        tmp_path / "t.cache",
        "--json",
        "-",
    ]
    first = json.loads(capsdeploy(*args, check=True, env_extra={"XDG_CACHE_HOME": str(cache)}).stdout)
    second = json.loads(capsdeploy(*args, check=True, env_extra={"XDG_CACHE_HOME": str(cache)}).stdout)
    assert not first["cache_hit"] and second["cache_hit"] and (tmp_path / "t.cache").stat().st_size > 0
    proc = capsdeploy(
        "validate",
        "--engine",
        "trt",
        "--checkpoint",
        tiny_run,
        "--model",
        tmp_path / "m.plan",
        "--num-samples",
        256,
        "--json",
        "-",
    )
    r = json.loads(proc.stdout)
    assert r["outputs"]["scores"]["max_abs_error"] < {"fp32": 1e-4, "fp16": 5e-3, "int8": 0.1}[precision]


@pytest.mark.gpu
def test_trt_backend_cuda_graphs_and_clones_agree(trt_ready, tiny_run, tmp_path):
    from capsdeploy.runtime.trt.backend import TrtBackend
    from capsdeploy.runtime.trt.build import BuildOptions, build_engine

    export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions(input_dtype="uint8"))
    build_engine(tmp_path / "m.onnx", tmp_path / "m.plan", BuildOptions(max_batch=32, use_engine_cache=False))
    eager = TrtBackend(tmp_path / "m.plan")
    graphs = TrtBackend(tmp_path / "m.plan", cuda_graphs=True)
    clone = eager.clone()
    for n in (1, 7, 32):
        x = np.random.default_rng(n).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)
        a, b, c = eager.infer({"image": x}), graphs.infer({"image": x}), clone.infer({"image": x})
        assert a["scores"].shape == (n, 10)
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-6)
        np.testing.assert_allclose(a["scores"], c["scores"], atol=1e-6)


@pytest.mark.gpu
def test_torch_cuda_validate(tiny_run, tmp_path):
    proc = capsdeploy(
        "validate", "--engine", "torch-cuda", "--checkpoint", tiny_run, "--num-samples", 64, "--json", "-"
    )
    r = json.loads(proc.stdout)
    assert r["outputs"]["scores"]["max_abs_error"] < 1e-4
