"""The decisions in the GPU paths that need no GPU to check: which stream a TensorRT backend
gets, which arithmetic an ONNX Runtime session reports, which tolerances judge it. The GPU
effects themselves are checked by tests/runtime/test_gpu_trt.py and scripts/gpu_check.sh."""

import types

import pytest

from capsdeploy.errors import UsageError


class _PooledStreams:
    """PyTorch's stream pool as c10 hands it out: 32 streams per device, round-robin."""

    def __init__(self):
        self.next = 0

    def Stream(self, device=None):
        self.next += 1
        return types.SimpleNamespace(cuda_stream=0x1000 + (self.next - 1) % 32)


def test_no_two_live_backends_share_a_pooled_stream(monkeypatch):
    import capsdeploy.runtime.trt.backend as backend

    monkeypatch.setattr(backend, "_streams_in_use", set())
    monkeypatch.setattr(backend, "_cudart", lambda: None)
    torch = types.SimpleNamespace(cuda=_PooledStreams())
    device = types.SimpleNamespace(index=0)
    held = [backend.acquire_stream(torch, device) for _ in range(32)]
    assert len({s.cuda_stream for s, _ in held}) == 32
    torch.cuda.next = 5  # another library took streams from the pool meanwhile
    with pytest.raises(UsageError, match="more than 32 TensorRT execution contexts"):
        backend.acquire_stream(torch, device)  # the old code silently shared stream 0x1000
    stream, release = held[7]
    release()
    again, _ = backend.acquire_stream(torch, device)
    assert again.cuda_stream == stream.cuda_stream  # the released one, not a shared one


def test_ort_tensorrt_provider_reports_tf32_and_is_judged_by_the_tf32_tolerances():
    from capsdeploy.runtime.compare import DEFAULT_TOLERANCES, tolerances_for
    from capsdeploy.runtime.ort_backend import provider_math

    trt = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert provider_math(trt, {}) == "TF32 allowed"
    assert provider_math(trt, {"NVIDIA_TF32_OVERRIDE": "0"}) == "FP32 (TF32 off)"
    assert provider_math(["CUDAExecutionProvider", "CPUExecutionProvider"], {}) == "FP32 (TF32 off)"
    assert tolerances_for("fp32", "TF32 allowed").atol > DEFAULT_TOLERANCES["fp32"].atol
    assert tolerances_for("fp32", "FP32 (TF32 off)") == DEFAULT_TOLERANCES["fp32"]
    assert tolerances_for("int8", "TF32 allowed") == DEFAULT_TOLERANCES["int8"]


def test_a_cpu_session_reports_fp32(tiny_export, tiny_run, tmp_path):
    from capsdeploy.runtime.ort_backend import OrtBackend

    tiny_export(tmp_path / "m.onnx")
    assert OrtBackend(tmp_path / "m.onnx").math == "FP32 (TF32 off)"


def test_version_compatible_plans_need_host_code_unless_the_lean_runtime_is_excluded():
    from capsdeploy.runtime.trt.backend import runtime_needs_host_code

    assert not runtime_needs_host_code({})
    assert runtime_needs_host_code({"compatibility": {"version_compatible": True}})
    assert not runtime_needs_host_code(
        {"compatibility": {"version_compatible": True, "exclude_lean_runtime": True}}
    )


def test_min_batch_padding_returns_the_request_row_and_a_planted_row_swap_shows(tiny_export, tiny_run, tmp_path):
    """The batcher pads a batch below the engine's minimum with zero rows: a backend (or slicing)
    that answered with a pad row instead of the request's must be caught. With the old padding
    (copies of the request's row) the planted swap below gave the right answer by accident."""
    import numpy as np

    from capsdeploy.runtime.batcher import DynamicBatcher
    from capsdeploy.runtime.ort_backend import OrtBackend

    class Profiled(OrtBackend):
        min_batch_size = 4
        max_batch_size = 8

    class RowsReversed(Profiled):  # the planted fault: rows come back in the wrong order
        def _infer(self, feeds):
            return {k: v[::-1].copy() for k, v in super()._infer(feeds).items()}

    tiny_export(tmp_path / "m.onnx")
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    ref = OrtBackend(tmp_path / "m.onnx").infer({"image": x})["scores"]
    got = {}
    for cls in (Profiled, RowsReversed):
        with DynamicBatcher(cls(tmp_path / "m.onnx"), max_batch_size=8, max_queue_delay_us=0) as b:
            got[cls.__name__] = b.infer({"image": x})["scores"]
    np.testing.assert_allclose(got["Profiled"], ref, atol=1e-6)
    assert np.abs(got["RowsReversed"] - ref).max() > 1e-4  # the swap is visible
