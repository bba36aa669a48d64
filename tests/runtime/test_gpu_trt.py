"""TensorRT and CUDA runs. Skipped, with the reason, where CUDA or TensorRT is missing; they fail
instead with CAPSDEPLOY_REQUIRE_GPU=1 / CAPSDEPLOY_REQUIRE_TRT=1 (tests/conftest.py)."""

import json

import numpy as np
import pytest

from capsdeploy.export import ExportOptions, export_onnx
from tests.helpers import capsdeploy


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
    # Judged by the per-precision tolerances: FP32 within 1e-5 needs the plan built with TF32 off.
    assert proc.returncode == 0 and r["passed"], r["failures"]
    if precision == "fp32":
        assert r["math"] == "FP32 (TF32 off)" and r["outputs"]["scores"]["max_abs_error"] <= 1e-5


def _plan(tiny_run, tmp_path, **build):
    from capsdeploy.runtime.trt.build import BuildOptions, build_engine

    export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions(input_dtype="uint8"))
    opts = BuildOptions(**{"max_batch": 32, "use_engine_cache": False, **build})
    build_engine(tmp_path / "m.onnx", tmp_path / "m.plan", opts)
    return tmp_path / "m.plan"


def _pixels(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)


@pytest.mark.gpu
def test_cuda_graphs_with_interleaved_batch_sizes_match_eager_every_time(trt_ready, tiny_run, tmp_path):
    """The old backend replayed the batch-1 graph with the context left in its batch-7 state."""
    from capsdeploy.runtime.trt.backend import TrtBackend

    plan = _plan(tiny_run, tmp_path)
    eager, graphs = TrtBackend(plan), TrtBackend(plan, cuda_graphs=True)
    for i, n in enumerate((1, 7, 1, 32, 7, 3)):
        x = _pixels(n, i)
        a, b = eager.infer({"image": x}), graphs.infer({"image": x})
        assert b["scores"].shape == (n, 10)
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-6)
    # Buckets, not one graph per batch size, and every one captured (no eager fallback).
    assert graphs.capture_state == {1: True, 4: True, 8: True, 32: True}, graphs.capture_failures


@pytest.mark.gpu
def test_graph_clones_from_concurrent_threads(trt_ready, tiny_run, tmp_path):
    import threading

    from capsdeploy.runtime.trt.backend import TrtBackend

    plan = _plan(tiny_run, tmp_path)
    ref = TrtBackend(plan)
    base = TrtBackend(plan, cuda_graphs=True)
    workers = [base, base.clone(), base.clone()]
    errors = []

    def run(backend, seed):
        try:
            for k, n in enumerate((5, 1, 16, 5)):
                x = _pixels(n, seed * 10 + k)
                np.testing.assert_allclose(
                    backend.infer({"image": x})["scores"], ref.infer({"image": x})["scores"], atol=1e-6
                )
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w, i)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # Every worker replayed its own graphs: an eager fallback would match the reference too.
    assert len({w.stream.cuda_stream for w in workers}) == len(workers)
    for w in workers:
        assert w.capture_state == {1: True, 8: True, 16: True}, (w.capture_state, w.capture_failures)


@pytest.mark.gpu
def test_min_batch_profile_warmup_batcher_and_out_of_profile(trt_ready, tiny_run, tmp_path):
    from capsdeploy.errors import InvalidInputError
    from capsdeploy.runtime.batcher import DynamicBatcher
    from capsdeploy.runtime.trt.backend import TrtBackend

    backend = TrtBackend(_plan(tiny_run, tmp_path, min_batch=2, opt_batch=4, max_batch=8))
    assert (backend.min_batch_size, backend.max_batch_size) == (2, 8)
    backend.warmup()  # the old warm-up ran batch 1 and failed
    with pytest.raises(InvalidInputError, match="maximum of 8"):
        backend.infer({"image": _pixels(9, 0)})
    with pytest.raises(InvalidInputError, match="minimum of 2"):
        backend.infer({"image": _pixels(1, 0)})
    with DynamicBatcher(backend, max_batch_size=64, max_queue_delay_us=0) as b:
        assert b.max_batch_size == 8  # clamped to the profile
        x = _pixels(1, 1)
        one = b.infer({"image": x})  # padded to the profile's minimum, its own row back
    assert one["scores"].shape == (1, 10)
    # Against x beside a different image: the batcher pads with zeros, so a pad row returned in
    # place of the request's would differ from x's row here.
    other = _pixels(1, 2)
    pair = backend.infer({"image": np.concatenate([x, other])})["scores"]
    assert np.abs(pair[0] - pair[1]).max() > 1e-3  # the two rows are distinguishable
    np.testing.assert_allclose(one["scores"], pair[:1], atol=1e-6)
    zeros = backend.infer({"image": np.zeros((2, 1, 28, 28), np.uint8)})["scores"][:1]
    assert np.abs(one["scores"] - zeros).max() > 1e-3


@pytest.mark.gpu
def test_bench_two_workers_on_trt(trt_ready, tiny_run, tmp_path):
    plan = _plan(tiny_run, tmp_path)
    proc = capsdeploy(
        "bench",
        "--engine",
        "trt",
        "--model",
        plan,
        "--clients",
        16,
        "--requests",
        8,
        "--repeats",
        1,
        "--workers",
        2,
        "--json",
        "-",
        check=True,  # a client thread that raised fails the bench (exit != 0)
    )
    r = json.loads(proc.stdout)
    per_worker = r["modes"]["dynamic_batcher"]["batches_per_worker"]
    assert r["batcher_workers"] == 2 and len(per_worker) == 2
    assert all(n > 0 for n in per_worker), per_worker  # both execution contexts served batches


@pytest.mark.gpu
def test_validate_ort_cuda_runs_on_cuda(tiny_run, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (CUDAExecutionProvider unavailable)")
    export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions())
    proc = capsdeploy(
        "validate",
        "--engine",
        "ort-cuda",
        "--checkpoint",
        tiny_run,
        "--model",
        tmp_path / "m.onnx",
        "--num-samples",
        64,
        "--json",
        "-",
    )
    # OrtBackend refuses a session whose CUDA provider did not activate, so a pass ran on CUDA.
    r = json.loads(proc.stdout)
    assert proc.returncode == 0 and r["passed"], proc.stderr


@pytest.mark.gpu
def test_torch_cuda_validate(tiny_run, tmp_path):
    proc = capsdeploy(
        "validate", "--engine", "torch-cuda", "--checkpoint", tiny_run, "--num-samples", 64, "--json", "-"
    )
    r = json.loads(proc.stdout)
    # Both sides true FP32 (TF32 off on CUDA): the FP32 tolerance applies.
    assert proc.returncode == 0 and r["passed"] and r["outputs"]["scores"]["max_abs_error"] <= 1e-5, r
