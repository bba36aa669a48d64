"""Fixtures the runtime tests share."""

import pytest


class _FakeEnv:
    trt = None
    version = "10.7.0"
    major = 10
    gpu_name = "NVIDIA H100"
    compute_capability = "9.0"


@pytest.fixture
def fake_builds(monkeypatch):
    """require_tensorrt passes and _build_plan returns bytes naming its inputs; counts builds."""
    import capsdeploy.runtime.trt.build as build

    calls = []

    def fake_build(env, model, onnx_path, shapes, opts, timing_path, tf32):
        calls.append({"onnx": str(onnx_path), "timing": timing_path, "tf32": tf32})
        return f"plan of {onnx_path} tf32={tf32}".encode()

    monkeypatch.setattr(build, "require_tensorrt", lambda: _FakeEnv())
    monkeypatch.setattr(build, "_build_plan", fake_build)
    return calls
