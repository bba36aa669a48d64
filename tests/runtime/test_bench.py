import json
import statistics

from capsdeploy.export import ExportOptions, export_onnx
from tests.helpers import capsdeploy


def test_bench_reports_environment_medians_and_ratio(tiny_run, tmp_path):
    export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions())
    proc = capsdeploy(
        "bench",
        "--model",
        tmp_path / "m.onnx",
        "--clients",
        4,
        "--requests",
        2,
        "--repeats",
        3,
        "--json",
        "-",
        check=True,
    )
    r = json.loads(proc.stdout)
    assert r["environment"]["onnxruntime"] and r["environment"]["cpu_count"] >= 1
    modes = r["modes"]
    assert set(modes) == {"direct_batch1", "dynamic_batcher"}
    for m in modes.values():
        assert len(m["throughput_per_repeat"]) == 3
        assert m["median_images_per_second"] == statistics.median(m["throughput_per_repeat"])
        assert 0 < m["latency_ms_p50"] <= m["latency_ms_p99"]
    ratio = (
        modes["dynamic_batcher"]["median_images_per_second"]
        / modes["direct_batch1"]["median_images_per_second"]
    )
    assert abs(r["batcher_speedup_median"] - ratio) < 0.01
