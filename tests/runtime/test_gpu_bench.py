"""bench on a real TensorRT engine: GPU phases from CUDA events, CUDA graphs on and off."""

import json

import pytest

from tests.helpers import capsdeploy


@pytest.mark.gpu
def test_trt_bench_reports_phases_and_both_graph_modes(tiny_run, trt_ready):
    report = json.loads(
        capsdeploy("bench", "--checkpoint", tiny_run, "--engines", "torch,trt", "--batch-sizes", "1,32",
                   "--duration-s", 0.5, "--json", "-", check=True).stdout
    )  # fmt: skip
    rows = {(r["engine"], r["batch"]): r for r in report["results"]}
    assert {("trt", 1), ("trt", 32), ("trt+graphs", 1), ("trt+graphs", 32)} <= set(rows)
    for (engine, _), r in rows.items():
        if not engine.startswith("trt"):
            assert "gpu_compute_ms_p50" not in r
            continue
        assert r["gpu_compute_ms_p50"] > 0 and r["gpu_h2d_ms_p50"] > 0 and r["gpu_d2h_ms_p50"] > 0
        gpu = r["gpu_h2d_ms_p50"] + r["gpu_compute_ms_p50"] + r["gpu_d2h_ms_p50"]
        assert gpu <= r["latency_ms_p50"] * 1.05  # the GPU phases fit inside the host-measured latency
        if engine == "trt+graphs":  # timed on replayed graphs, not on an eager fallback
            assert r["graphs_failed"] == [] and r["batch"] in r["graphs_captured"], r
        else:
            assert "graphs_captured" not in r
