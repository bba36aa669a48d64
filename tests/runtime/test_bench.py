import json
import statistics

import pytest

from tests.helpers import capsdeploy, capsdeploy_process


def test_bench_reports_environment_medians_and_ratio(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx")
    proc = capsdeploy(
        "bench",
        "batcher",
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


LATENCY_FIELDS = {
    "latency_ms_min",
    "latency_ms_mean",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p95",
    "latency_ms_p99",
    "latency_ms_max",
    "cv",
    "images_per_second",
    "speedup_vs_torch",
    "p50_vs_torch",
    "iterations",
    "gflop_per_image",
    "effective_gflops",
    "fraction_of_fp32_peak",
}


def test_engine_mode_reports_every_field_and_writes_csv_markdown_plot(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", input_dtype="uint8")
    out = {k: tmp_path / f"bench.{k}" for k in ("csv", "md", "png")}
    proc = capsdeploy(
        "bench",
        "engines",
        "--checkpoint",
        tiny_run,
        "--engines",
        "torch,ort",
        "--model",
        tmp_path / "m.onnx",
        "--batch-sizes",
        "1,4",
        "--warmup-s",
        0.01,
        "--duration-s",
        0.05,
        "--accuracy-samples",
        32,
        "--json",
        "-",
        "--csv",
        out["csv"],
        "--markdown",
        out["md"],
        "--plot",
        out["png"],
        check=True,
    )
    r = json.loads(proc.stdout)
    assert r["mode"] == "engine" and r["environment"]["cpu_count"] >= 1 and r["peak_fp32_gemm_gflops"] > 0
    assert "cpu_flags" in r["environment"] and "cpu_model" in r["environment"]
    rows = r["results"]
    assert {(x["engine"], x["batch"]) for x in rows} == {
        (e, b) for e in ("torch", "ort", "m.onnx") for b in (1, 4)
    }
    for x in rows:
        assert set(x) >= LATENCY_FIELDS, LATENCY_FIELDS - set(x)
        assert x["latency_ms_min"] <= x["latency_ms_p50"] <= x["latency_ms_p90"] <= x["latency_ms_p99"]
        assert x["latency_ms_p99"] <= x["latency_ms_max"] and x["iterations"] >= 10
        assert 0 <= x["accuracy"] <= 1
        torch_row = next(t for t in rows if t["engine"] == "torch" and t["batch"] == x["batch"])
        assert abs(x["speedup_vs_torch"] - x["images_per_second"] / torch_row["images_per_second"]) < 0.01
    # The same model scored the same way: one ONNX file exported from the run, one given.
    acc = {x["engine"]: x["accuracy"] for x in rows}
    assert acc["ort"] == acc["m.onnx"] == acc["torch"]
    csv_lines = out["csv"].read_text().splitlines()
    assert len(csv_lines) == 1 + len(rows) and "latency_ms_p99" in csv_lines[0]
    assert out["md"].read_text().startswith("| engine | batch |")
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_routing_sweep_reports_accuracy_and_latency_per_count(tiny_run):
    proc = capsdeploy(
        "bench",
        "sweep",
        "--checkpoint",
        tiny_run,
        "--routing-iters",
        "1,3",
        "--engines",
        "ort",
        "--batch-size",
        4,
        "--warmup-s",
        0,
        "--duration-s",
        0.05,
        "--json",
        "-",
        check=True,
    )
    r = json.loads(proc.stdout)
    assert r["mode"] == "routing-sweep"
    rows = {x["routing_iters"]: x for x in r["results"]}
    assert set(rows) == {1, 3}
    assert all(0 <= x["accuracy"] <= 1 and x["batch"] == 4 for x in rows.values())
    assert rows[1]["engine"] == "ort-r1" and rows[3]["engine"] == "ort-r3"


def test_bench_refuses_unknown_engines(tiny_run):
    proc = capsdeploy("bench", "engines", "--checkpoint", tiny_run, "--engines", "onnx-int4")
    assert proc.returncode == 2 and "unknown engine" in proc.stderr


def test_http_mode_closed_and_open_loop_against_a_live_server(tiny_run, tmp_path):
    from capsdeploy.export import ExportOptions as Opts
    from capsdeploy.export.triton_repo import export_triton
    from capsdeploy.repository import BatchingOptions
    from capsdeploy.serve.process import ServerProcess

    export_triton(tiny_run, tmp_path / "repo", Opts(), BatchingOptions())
    srv = ServerProcess.start([tmp_path / "repo", "--engine", "ort", "--drain-delay", "0"], tmp_path)
    try:
        # gRPC first, on a fresh server: its statistics are all zero, which protobuf's JSON
        # leaves out (the old code failed on the missing "count").
        over_grpc = capsdeploy(
            "bench",
            "http",
            "--url",
            srv.grpc_url,
            "--concurrency",
            "1,4",
            "--window-s",
            0.3,
            "--max-trials",
            3,
            "--json",
            "-",
            check=True,
        )
        proc = capsdeploy(
            "bench",
            "http",
            "--url",
            srv.url,
            "--concurrency",
            "1,4",
            "--request-rate",
            40,
            "--poisson",
            "--window-s",
            0.3,
            "--max-trials",
            3,
            "--json",
            "-",
            check=True,
        )
    finally:
        assert srv.stop() == 0
    g = json.loads(over_grpc.stdout)
    assert g["protocol"] == "grpc" and g["url"].startswith("grpc://")
    for lv in g["levels"]:  # the same server, its gRPC front end: answers and the server's own counts
        assert lv["errors"] == 0 and lv["throughput_rps"] > 0
        assert lv["server"]["requests"] >= sum(w["completed"] for w in lv["windows"][-3:])
        assert lv["server"]["compute_infer_us_avg"] > 0
    r = json.loads(proc.stdout)
    assert r["mode"] == "http" and r["encoding"] == "binary" and r["environment"]["cpu_count"] >= 1
    closed = [lv for lv in r["levels"] if lv["loop"] == "closed"]
    opened = [lv for lv in r["levels"] if lv["loop"] == "open"]
    assert [lv["concurrency"] for lv in closed] == [1, 4] and opened[0]["request_rate"] == 40
    for lv in r["levels"]:
        assert 1 <= lv["trials"] <= 3 and len(lv["windows"]) == lv["trials"]
        assert lv["status_codes"] == {"200": sum(lv["status_codes"].values())} and lv["errors"] == 0
        assert lv["latency_ms_p50"] <= lv["latency_ms_p90"] <= lv["latency_ms_p95"] <= lv["latency_ms_p99"]
        assert lv["throughput_rps"] > 0 and isinstance(lv["stable"], bool)
        s = lv["server"]
        assert s["requests"] >= sum(w["completed"] for w in lv["windows"][-3:])
        assert s["executions"] >= 1 and s["queue_us_avg"] >= 0 and s["compute_infer_us_avg"] > 0
    assert opened[0]["poisson"] is True and opened[0]["late_sends"] >= 0
    assert opened[0]["offered_rps"] == 40 and isinstance(opened[0]["overloaded"], bool)
    assert opened[0]["sent"] >= sum(
        w["completed"] for w in opened[0]["windows"][-opened[0]["windows_reported"] :]
    )


def test_stability_rule():
    from capsdeploy.bench.http import stable

    w = lambda t, p: {"throughput_rps": t, "latency_ms_p99": p}  # noqa: E731
    assert not stable([w(100, 10), w(100, 10)])  # needs three windows
    assert stable([w(50, 30), w(100, 10), w(105, 10.5), w(96, 9.7)])  # only the last three count
    assert not stable([w(100, 10), w(100, 10), w(125, 10)])  # throughput off by more than 10%
    assert not stable([w(100, 10), w(100, 10), w(100, 13)])  # p99 off by more than 10%


def test_cpu_info_reads_the_flags_that_matter():
    from capsdeploy.envinfo import cpu_info

    text = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni avx512_bf16\n"
    info = cpu_info(text)
    assert info["cpu_model"] == "AMD EPYC 9R14"
    assert info["cpu_flags"] == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert cpu_info("model name\t: old\nflags\t: sse2 avx2\n")["cpu_flags"] == ["avx2"]


def test_flops_of_the_paper_model():
    from capsdeploy.bench.flops import capsnet_flops
    from capsdeploy.model import CapsNetConfig

    cfg = CapsNetConfig().to_dict()
    # conv1 20*20*256*81, primary 6*6*256*256*81, predictions 1152*8*160, routing 5 * 1152*160
    macs = 8_294_400 + 191_102_976 + 1_474_560 + 5 * 184_320
    assert capsnet_flops(cfg, 3) == 2 * macs
    assert capsnet_flops(cfg, 1) == 2 * (macs - 4 * 184_320)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--url", "http://127.0.0.1:9", "--engines", "torch"], "belong to engine mode"),
        (["--url", "http://127.0.0.1:9", "--batch-sizes", "8"], "belong to engine mode"),
        (["--url", "http://127.0.0.1:9", "--poisson"], "give --request-rate"),
        (["--concurrency", "4", "--model", "m.onnx"], "needs --url"),
        (["--routing-iters", "1,2", "--model", "m.onnx", "--checkpoint", "x"], "drop --model"),
    ],
)
def test_flags_of_another_mode_are_refused(args, words):
    """The deprecated flag form (`bench --url ...`, cli/bench_legacy.py), kept one release."""
    proc = capsdeploy("bench", *args)
    assert proc.returncode == 2 and words in proc.stderr


def test_model_files_alone_run_engine_mode(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "a.onnx")
    tiny_export(tmp_path / "b.onnx", input_dtype="uint8")
    proc = capsdeploy(
        "bench",
        "engines",
        "--model",
        f"{tmp_path / 'a.onnx'},{tmp_path / 'b.onnx'}",
        "--batch-sizes",
        "2,2",
        "--warmup-s",
        0,
        "--duration-s",
        0.02,
        "--json",
        "-",
        check=True,
    )
    rows = json.loads(proc.stdout)["results"]
    assert [(r["engine"], r["batch"]) for r in rows] == [("a.onnx", 2), ("b.onnx", 2)]  # duplicates dropped
    assert all(r["speedup_vs_torch"] is None for r in rows)  # no reference ran: no ratio invented


def test_overload_rule():
    from capsdeploy.bench.http import overloaded

    assert not overloaded(100, 98, late=0, sent=300)
    assert overloaded(100, 80, late=0, sent=300)  # completed well under the offered rate
    assert overloaded(100, 99, late=40, sent=300)  # the client fell behind its own schedule


def test_open_loop_schedules_and_request_bodies():
    import numpy as np

    from capsdeploy.bench.http import request_body, send_offsets

    even = send_offsets(100, 2.0, poisson=False, rng=None)
    assert len(even) == 200 and np.allclose(np.diff(even), 0.01)
    rng = np.random.default_rng(0)
    arrivals = send_offsets(100, 20.0, poisson=True, rng=rng)
    gaps = np.diff(arrivals)
    assert arrivals[-1] < 20.0 and 1800 < len(arrivals) < 2200  # 100/s on average over the window
    assert gaps.std() / gaps.mean() > 0.8  # exponential gaps (CV 1), not a fixed spacing (CV 0)
    x = np.arange(2 * 784, dtype=np.float32).reshape(2, 1, 28, 28)
    body, headers = request_body("image", "FP32", x, binary=True)
    n = int(headers["Inference-Header-Content-Length"])
    assert np.array_equal(np.frombuffer(body[n:], np.float32).reshape(x.shape), x)
    assert json.loads(body[:n])["inputs"][0]["parameters"]["binary_data_size"] == x.nbytes
    body, headers = request_body("image", "FP32", x, binary=False)
    assert headers == {"Content-Type": "application/json"}
    assert json.loads(body)["inputs"][0]["data"] == x.ravel().tolist()


def test_threads_apply_to_the_engines_and_the_torch_reference(tiny_run, tmp_path):
    import torch

    from capsdeploy.bench.engine import build_backend, parse_engines

    before = torch.get_num_threads()
    try:
        torch_choice, ort_choice = parse_engines(["torch", "ort"], [])
        build_backend(torch_choice, str(tiny_run), tmp_path, threads=1).close()
        assert torch.get_num_threads() == 1
        ort = build_backend(ort_choice, str(tiny_run), tmp_path, threads=1)
        assert ort.session.get_session_options().intra_op_num_threads == 1
        ort.close()
    finally:
        torch.set_num_threads(before)


def test_trt_engines_are_timed_with_and_without_cuda_graphs():
    from capsdeploy.bench.engine import parse_engines, with_graph_modes

    choices = with_graph_modes(parse_engines(["torch", "trt", "trt-fp16"], []), (False, True))
    assert [(c.label, c.cuda_graphs) for c in choices] == [
        ("torch", False), ("trt", False), ("trt+graphs", True), ("trt-fp16", False), ("trt-fp16+graphs", True),
    ]  # fmt: skip
    only_on = with_graph_modes(parse_engines(["trt"], []), (True,))
    assert [(c.label, c.cuda_graphs) for c in only_on] == [("trt+graphs", True)]


def test_gpu_phases_are_reported_apart_when_the_backend_times_them():
    """The bench plumbing for CUDA-event phases, on a backend that reports fixed phase times
    (no TensorRT claim: tests/runtime/test_gpu_bench.py times a real engine)."""
    import numpy as np

    from capsdeploy.bench.engine import time_backend

    class Phased:
        record_phases = False
        last_phases = None
        calls_recorded = 0

        def infer(self, feeds):
            if self.record_phases:
                self.calls_recorded += 1
                self.last_phases = {"h2d_ms": 0.1 * self.calls_recorded, "compute_ms": 2.0, "d2h_ms": 0.05}
            return {}

    b = Phased()
    stats = time_backend(b, {"image": np.zeros((4, 1))}, warmup_s=0, duration_s=0, min_iters=11)
    assert stats["iterations"] == 11 and b.calls_recorded == 11 and not b.record_phases
    assert stats["gpu_compute_ms_p50"] == 2.0 and stats["gpu_d2h_ms_p50"] == 0.05
    assert stats["gpu_h2d_ms_p50"] == pytest.approx(0.6)  # median of 0.1 .. 1.1
    plain = time_backend(
        type("Plain", (), {"infer": lambda self, f: {}})(), {"image": np.zeros((1, 1))}, 0, 0
    )
    assert not any(k.startswith("gpu_") for k in plain)


def test_each_int8_flavour_gets_its_own_export():
    from capsdeploy.bench.engine import export_name, parse_engines

    names = {
        c.label: export_name(c) for c in parse_engines(["ort", "ort-int8", "ort-cuda-int8", "trt-int8"], [])
    }
    assert names["ort-int8"] != names["trt-int8"] == names["ort-cuda-int8"]
    assert len({names["ort"], names["ort-int8"], names["trt-int8"]}) == 3


def test_peers_run_beside_our_engines_in_the_same_run(tiny_run):
    """--peers: OpenVINO with every default on the FP32 and the INT8 file, torch.compile and
    bf16 autocast, each a row of the same report, with PyTorch eager as the reference. A real
    process, not CliRunner: what OpenVINO, torch.compile or oneDNN write straight to file
    descriptor 1 would corrupt `--json -`, and only a child's stdout shows it."""
    proc = capsdeploy_process(
        "bench", "engines", "--checkpoint", tiny_run, "--engines", "ov", "--peers", "--batch-sizes", "2",
        "--warmup-s", 0.01, "--duration-s", 0.05, "--accuracy-samples", 16, "--json", "-",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["engine"]: r for r in json.loads(proc.stdout)["results"]}
    peers = {"ov-defaults", "ov-defaults-int8", "torch-compile", "torch-bf16-autocast"}
    assert set(rows) == {"torch", "ov"} | peers
    assert {e for e, r in rows.items() if r["peer"]} == peers
    assert all(r["speedup_vs_torch"] is not None for r in rows.values())
    assert rows["torch-compile"]["accuracy"] == rows["torch"]["accuracy"]
    assert rows["ov-defaults-int8"]["math"].startswith("INT8")
    # An INT8 engine ran: the report carries the INT8 GEMM peak and the INT8 rows their share of it.
    report = json.loads(proc.stdout)
    int8_peak = report["peak_int8_gemm_gops"]
    assert int8_peak > 0
    r8 = rows["ov-defaults-int8"]
    assert r8["fraction_of_int8_peak"] == pytest.approx(r8["effective_gflops"] / int8_peak, abs=1e-4)
    assert "fraction_of_int8_peak" not in rows["ov"]
    assert rows["torch-bf16-autocast"]["math"] == "BF16/FP16 autocast" and rows["ov"]["math"] == "FP32"
    from capsdeploy.runtime.ov_backend import core

    default_bf16 = "bf" in str(core().get_property("CPU", "INFERENCE_PRECISION_HINT")).lower()
    assert rows["ov-defaults"]["math"].startswith("BF16" if default_bf16 else "FP32")


def test_a_model_file_runs_on_the_engine_named_before_it(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx")
    proc = capsdeploy(
        "bench", "engines", "--model", f"{tmp_path / 'm.onnx'},ov-bf16={tmp_path / 'm.onnx'},ov={tmp_path / 'm.onnx'}",
        "--batch-sizes", "2", "--warmup-s", 0, "--duration-s", 0.02, "--json", "-",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["engine"]: r for r in json.loads(proc.stdout)["results"]}
    assert set(rows) == {"m.onnx", "ov-bf16:m.onnx", "ov:m.onnx"}
    assert rows["m.onnx"]["runtime"] == "ort" and rows["ov:m.onnx"]["math"] == "FP32"
    from capsdeploy.runtime.ov_backend import device_capabilities

    if "BF16" in device_capabilities():
        assert rows["ov-bf16:m.onnx"]["math"].startswith("BF16")
    bad = capsdeploy("bench", "engines", "--model", f"onnx-int4={tmp_path / 'm.onnx'}", "--batch-sizes", "1")
    assert bad.returncode == 2 and "unknown engine 'onnx-int4'" in bad.stderr


def test_instances_time_every_engine_with_concurrent_clones(tiny_run):
    proc = capsdeploy(
        "bench", "engines", "--checkpoint", tiny_run, "--engines", "ort,ov", "--instances", 2, "--batch-sizes", "2",
        "--warmup-s", 0, "--duration-s", 0.1, "--json", "-",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["instances"] == 2 and {x["instances"] for x in r["results"]} == {2}
    assert all(x["iterations"] >= 2 and x["images_per_second"] > 0 for x in r["results"])
    bad = capsdeploy("bench", "http", "--url", "http://127.0.0.1:9", "--instances", 2)
    assert bad.returncode == 2 and "--instances" in bad.stderr
