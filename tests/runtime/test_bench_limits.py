"""bench against engines with limits, on CPU: a profile that starts above batch 1 (the
TensorRT case, shown with an ONNX Runtime session that reports a TensorRT-like profile),
GPU rows measured against a GPU peak, and client threads that fail."""

import numpy as np
import pytest

from capsdeploy.errors import InferenceError
from capsdeploy.runtime.ort_backend import OrtBackend


class ProfiledOrt(OrtBackend):
    """An ONNX Runtime session that refuses batches outside 4..8, as a TensorRT plan built
    with --min-batch 4 --max-batch 8 does (Backend.infer enforces both limits)."""

    min_batch_size = 4
    max_batch_size = 8


@pytest.fixture
def onnx_model(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def _bench(monkeypatch, make, choices, **kw):
    import capsdeploy.bench.engine as engine
    import capsdeploy.bench.flops as flops

    monkeypatch.setattr(engine, "build_backend", lambda choice, *a, **k: make(choice))
    monkeypatch.setattr(flops, "peak_gemm_gflops", lambda: 100.0)
    return engine.bench_engines(choices, None, warmup_s=0, duration_s=0, **kw)


def test_bench_skips_batches_below_the_profile_minimum_and_pads_the_last_accuracy_chunk(
    monkeypatch, onnx_model
):
    from capsdeploy.bench.engine import EngineChoice, accuracy
    from capsdeploy.data import load_split

    choice = EngineChoice("plan", "ort", str(onnx_model))
    report = _bench(
        monkeypatch,
        lambda c: ProfiledOrt(c.model),
        [choice],
        batch_sizes=[1, 2, 4, 8, 16],
        accuracy_samples=10,
    )
    # The old loop ran batch 1 and crashed ("below this engine's minimum of 4"); the old accuracy
    # pass sent its last chunk of 2 images (10 = 8 + 2) and crashed the same way.
    assert [r["batch"] for r in report.results] == [4, 8]
    assert any("[1, 2, 16]" in w and "outside its profile 4..8" in w for w in report.warnings)
    test = load_split("synthetic", "t10k", None, download=False, limit=10)
    unlimited = accuracy(OrtBackend(onnx_model), test.images, test.labels)
    assert report.results[0]["accuracy"] == unlimited  # the pad rows were not scored


def test_gpu_engines_are_measured_against_a_gpu_peak_not_the_cpu_gemm(monkeypatch, tiny_run, onnx_model):
    import capsdeploy.bench.flops as flops
    from capsdeploy.bench.engine import EngineChoice

    monkeypatch.setattr(flops, "peak_gemm_gflops_cuda", lambda: 1e6, raising=False)
    # The same ONNX session twice, labelled once as a CPU engine and once as a GPU one: only the
    # peak they are divided by may differ. (No GPU claim: the GPU peak is stubbed.)
    choices = [
        EngineChoice("cpu", "ort", str(onnx_model)),
        EngineChoice("gpu", "ort-cuda", str(onnx_model)),
    ]
    monkeypatch.setattr("capsdeploy.bench.engine._flops_of", lambda backend, choice: 10**9)
    report = _bench(monkeypatch, lambda c: OrtBackend(c.model), choices, batch_sizes=[2])
    rows = {r["engine"]: r for r in report.results}
    for name, peak in (("cpu", 100.0), ("gpu", 1e6)):
        r = rows[name]
        assert r["effective_gflops"] == pytest.approx(r["images_per_second"], rel=1e-3)
        assert r["fraction_of_fp32_peak"] == pytest.approx(r["effective_gflops"] / peak, abs=1e-4)
    assert report.peak_fp32_gemm_gflops_gpu == 1e6


def test_gpu_rows_get_no_fraction_when_no_gpu_peak_can_be_measured(monkeypatch):
    import capsdeploy.bench.flops as flops

    monkeypatch.setattr(flops, "peak_gemm_gflops_cuda", lambda: None)
    rows = [
        {"runtime": "trt", "images_per_second": 1000.0, "_flops": 2 * 10**9},
        {"runtime": "ort", "images_per_second": 10.0, "_flops": 2 * 10**9},
    ]
    assert flops.add_peak_fractions(rows, cpu_peak=40.0) is None
    assert rows[0]["effective_gflops"] == 2000.0 and rows[0]["fraction_of_fp32_peak"] is None
    assert rows[1]["fraction_of_fp32_peak"] == 0.5


def test_cpu_int8_rows_are_also_measured_against_the_int8_peak(monkeypatch):
    import capsdeploy.bench.flops as flops

    monkeypatch.setattr(flops, "peak_gemm_gflops_cuda", lambda: 1e6)
    rows = [
        {"runtime": "ov", "precision": "int8", "images_per_second": 100.0, "_flops": 2 * 10**9},
        {"runtime": "ort", "precision": "fp32", "images_per_second": 10.0, "_flops": 2 * 10**9},
        {"runtime": "trt", "precision": "int8", "images_per_second": 1000.0, "_flops": 2 * 10**9},
        # an INT8 file given with --model (`bench engines --model ov-int8=int8.onnx`)
        {"runtime": "ov", "precision": "file", "file_precision": "int8", "images_per_second": 200.0, "_flops": 2 * 10**9},
    ]
    flops.add_peak_fractions(rows, cpu_peak=40.0, int8_peak=800.0)
    assert rows[0]["fraction_of_int8_peak"] == 0.25 and rows[0]["fraction_of_fp32_peak"] == 5.0
    assert "fraction_of_int8_peak" not in rows[1] and "fraction_of_int8_peak" not in rows[2]
    assert rows[3]["fraction_of_int8_peak"] == 0.5


def test_concurrency_bench_fails_when_a_client_thread_fails(onnx_model):
    """The old client threads died silently and the bench exited 0 with fewer requests timed."""
    from capsdeploy.bench.concurrency import bench_concurrency

    class Flaky(OrtBackend):
        calls = 0

        def _infer(self, feeds):
            Flaky.calls += 1
            if Flaky.calls == 7:
                raise RuntimeError("planted failure")
            return super()._infer(feeds)

    with pytest.raises(InferenceError, match=r"1 of 4 client threads failed.*planted failure"):
        bench_concurrency(Flaky(onnx_model), clients=4, requests_per_client=2, repeats=1, max_batch_size=4)


def test_client_errors_are_counted_and_the_first_one_named():
    from capsdeploy.bench.concurrency import _run_clients

    def call(sample):
        if sample % 3 == 0:
            raise ValueError(f"bad sample {sample}")
        return {}

    with pytest.raises(InferenceError) as e:
        _run_clients(3, 2, call, list(range(6)))
    assert "2 of 3 client threads failed" in str(e.value) and "ValueError: bad sample" in str(e.value)
    rate, lat = _run_clients(2, 3, lambda s: {}, list(range(6)))
    assert rate > 0 and len(lat) == 6 and np.all(np.asarray(lat) >= 0)
