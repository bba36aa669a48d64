"""`capsdeploy tune`: validation gates timing, the fastest passing candidate wins (timings
injected: speed is measured by benchmarks, not by tests), the tune file writes a repository
that serves the winner, and a tune file or repository from another CPU is refused."""

import json

import numpy as np
import pytest

from capsdeploy.bench.engine import build_backend
from capsdeploy.bench.tune import Candidate, tune
from capsdeploy.envinfo import cpu_info
from capsdeploy.runtime.backend import Backend
from tests.helpers import capsdeploy

# images/s per (candidate, batch) and batch-1 p50 in ms: "broken" would win if it were timed.
SPEED = {
    "ort": {1: (100, 4.0), 8: (300, 20.0)},
    "ov": {1: (150, 3.0), 8: (400, 15.0), 16: (380, 30.0)},
    "broken": {1: (9000, 0.1), 8: (9000, 0.1)},
}


class Broken(Backend):
    """ONNX Runtime with its scores scrambled: fast in the table above, wrong in fact."""

    name = "broken"

    def __init__(self, inner):
        self.inner, self.metadata = inner, inner.metadata

    def inputs(self):
        return self.inner.inputs()

    def outputs(self):
        return self.inner.outputs()

    def _infer(self, feeds):
        out = self.inner.infer(feeds)
        return {**out, "scores": out["scores"][:, ::-1].copy()}


def _timer(c, backend, feeds, batch):
    ips, p50 = SPEED[c.label].get(batch, (1.0, 1e3))
    return {"images_per_second": ips, "latency_ms_p50": p50}


def _build(tiny_run):
    def build(c, workdir):
        if c.label == "broken":
            return Broken(build_backend(Candidate("ort", "ort").choice(), str(tiny_run), workdir))
        return build_backend(c.choice(), str(tiny_run), workdir)

    return build


@pytest.fixture(scope="module")
def report(tiny_run):
    cands = [Candidate("ort", "ort"), Candidate("ov", "ov"), Candidate("broken", "ort")]
    return tune(
        str(tiny_run), cands, samples=64, batch_sizes=(1, 8, 16), dataset="synthetic",
        build=_build(tiny_run), timer=_timer,
    ).to_dict()  # fmt: skip


def test_the_fastest_passing_candidate_wins_and_a_failing_one_is_refused(report):
    rows = {r["label"]: r for r in report["candidates"]}
    assert rows["broken"]["verdict"] == "rejected" and not rows["broken"]["timings"]
    assert rows["broken"]["reason"].startswith("failed fp32 validation")
    assert rows["ort"]["verdict"] == rows["ov"]["verdict"] == "passed"
    assert rows["ov"]["validation"]["top1_agreement"] == 1.0 and rows["ov"]["validation"]["samples"] == 64
    w = report["winners"]
    assert (w["throughput"]["label"], w["throughput"]["batch"]) == ("ov", 8)
    assert w["throughput"]["near_best_batches"] == [8, 16]  # 380 >= 95% of 400
    assert (w["latency"]["label"], w["latency"]["latency_ms_p50"]) == ("ov", 3.0)
    assert w["repository"]["engine"] == "ov"
    assert report["cpu"] == cpu_info()


def test_an_unavailable_candidate_is_rejected_with_the_reason(tiny_run, monkeypatch):
    import capsdeploy.runtime.ov_backend as ob

    monkeypatch.setattr(ob, "device_capabilities", lambda device="CPU": ["FP32", "INT8"])
    r = tune(
        str(tiny_run), [Candidate("ov-bf16", "ov-bf16"), Candidate("ort", "ort")], samples=16,
        batch_sizes=(1,), dataset="synthetic", timer=lambda *a: {"images_per_second": 1.0, "latency_ms_p50": 1.0},
    ).to_dict()  # fmt: skip
    rows = {x["label"]: x for x in r["candidates"]}
    assert rows["ov-bf16"]["verdict"] == "rejected" and "no BF16 support" in rows["ov-bf16"]["reason"]
    assert r["winners"]["throughput"]["label"] == "ort"


def test_a_tuned_repository_serves_the_winner(report, tiny_run, tmp_path):
    from capsdeploy.repository import parse_config
    from capsdeploy.runtime.ov_backend import OvBackend
    from capsdeploy.serve.models import load_repository

    (tmp_path / "tune.json").write_text(json.dumps(report))
    repo = tmp_path / "repo"
    proc = capsdeploy(
        "export", "--format", "triton", "--checkpoint", tiny_run, "--tuned", tmp_path / "tune.json",
        "--output", repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "for the tuned engine ov" in proc.stdout
    cfg = parse_config((repo / "capsnet" / "config.pbtxt").read_text())
    assert cfg.backend == "openvino" and cfg.max_batch_size == 8  # the winner's best batch
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8]
    assert cfg.parameters["capsdeploy.engine"].string_value == "ov"
    models = load_repository(repo, "auto")
    try:
        assert isinstance(models["capsnet"].backend, OvBackend)
        x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
        assert models["capsnet"].batcher.infer({"image": x})["scores"].shape == (2, 10)
    finally:
        for m in models.values():
            m.close(0)


FOREIGN = {"cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "cpu_flags": ["avx512f", "amx_int8", "amx_tile"]}


def test_a_tune_file_from_another_cpu_is_refused_naming_both(report, tiny_run, tmp_path):
    (tmp_path / "tune.json").write_text(json.dumps({**report, "cpu": FOREIGN}))
    proc = capsdeploy(
        "export", "--format", "triton", "--checkpoint", tiny_run, "--tuned", tmp_path / "tune.json",
        "--output", tmp_path / "repo",
    )  # fmt: skip
    assert proc.returncode == 2 and "Platinum 8480+" in proc.stderr
    assert str(cpu_info()["cpu_model"]) in proc.stderr and not (tmp_path / "repo").exists()


def test_a_repository_tuned_on_another_cpu_is_refused_by_serve(report, tiny_run, tmp_path):
    (tmp_path / "tune.json").write_text(json.dumps(report))
    repo = tmp_path / "repo"
    capsdeploy("export", "--format", "triton", "--checkpoint", tiny_run, "--tuned", tmp_path / "tune.json",
               "--output", repo, check=True)  # fmt: skip
    cfg_path = repo / "capsnet" / "config.pbtxt"
    from capsdeploy.repository import parse_config, render_config

    cfg = parse_config(cfg_path.read_text())
    assert json.loads(cfg.parameters["capsdeploy.tuned_cpu"].string_value) == cpu_info()
    cfg.parameters["capsdeploy.tuned_cpu"].string_value = json.dumps(FOREIGN)
    cfg_path.write_text(render_config(cfg))
    proc = capsdeploy("serve", repo, "--port", "0")
    assert (
        proc.returncode == 2
        and "Platinum 8480+" in proc.stderr
        and "run `capsdeploy tune` here" in proc.stderr
    )


def test_tuning_for_an_exported_file_runs_that_file(tiny_export, tiny_run, tmp_path):

    tiny_export(tmp_path / "m.onnx")
    r = tune(
        str(tiny_run), [Candidate("ort", "ort"), Candidate("ov", "ov"), Candidate("ort-int8", "ort-int8")],
        samples=16, batch_sizes=(1,), dataset="synthetic", model=str(tmp_path / "m.onnx"),
        timer=lambda *a: {"images_per_second": 1.0, "latency_ms_p50": 1.0},
    ).to_dict()  # fmt: skip
    rows = {x["label"]: x for x in r["candidates"]}
    assert rows["ort"]["verdict"] == rows["ov"]["verdict"] == "passed" and r["model"] == str(
        tmp_path / "m.onnx"
    )
    assert rows["ort-int8"]["verdict"] == "rejected" and "not applicable" in rows["ort-int8"]["reason"]


def test_a_file_with_other_routing_iterations_is_validated_against_the_same_unrolling(tiny_run, tmp_path):
    """A file exported with --routing-iters 1 is compared with PyTorch at 1 iteration, not at the
    run's trained count (which would reject the very file the user asked to tune)."""
    import torch

    from capsdeploy.export import ExportOptions, export_onnx
    from capsdeploy.model.checkpoint import load_run, save_run

    # Random weights scaled up: long capsules, so 1 and 3 iterations differ by ~0.5 in the scores
    # (the tiny run's near-zero capsules agree to 1e-7 whatever the count).
    model, info = load_run(str(tiny_run), "cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    run = save_run(tmp_path / "run", model, info.raw)
    export_onnx(run, tmp_path / "r1.onnx", ExportOptions(routing_iters=1))
    r = tune(
        str(run), [Candidate("ort", "ort"), Candidate("torch", "torch")], samples=16,
        batch_sizes=(1,), dataset="synthetic", model=str(tmp_path / "r1.onnx"),
        timer=lambda *a: {"images_per_second": 1.0, "latency_ms_p50": 1.0},
    ).to_dict()  # fmt: skip
    rows = {x["label"]: x for x in r["candidates"]}
    assert rows["ort"]["verdict"] == "passed", rows["ort"]["reason"]
    assert rows["ort"]["validation"]["max_abs_error_scores"] < 1e-5
    assert rows["torch"]["verdict"] == "passed"


def test_instances_are_timed_concurrently_each_on_its_own_clone():
    """The harness's arithmetic on a backend that sleeps 20 ms per call: two instances at batch 4
    can reach at most 2 x 4 / 0.02 = 400 images/s, one at most 200."""
    import time

    from capsdeploy.bench.tune import time_instances

    made = []

    class Sleepy:
        def infer(self, feeds):
            time.sleep(0.02)
            return {}

        def clone(self):
            made.append(Sleepy())
            return made[-1]

    feeds = {"image": np.zeros((4, 1), np.float32)}
    two = time_instances(Sleepy(), feeds, 2, warmup_s=0.05, duration_s=0.6)
    assert len(made) == 2
    assert 200 < two["images_per_second"] <= 400 and two["latency_ms_p50"] >= 20
    one = time_instances(Sleepy(), feeds, 1, warmup_s=0.0, duration_s=0.3)
    assert one["images_per_second"] <= 200


def test_the_cli_writes_the_tune_file_and_prints_the_table(tiny_run, tmp_path):
    out = tmp_path / "tune.json"
    proc = capsdeploy(
        "tune", "--checkpoint", tiny_run, "--candidates", "ort,ov", "--batch-sizes", "1,4", "--duration-s", 0.05,
        "--warmup-s", 0, "--dataset", "synthetic", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["validation"]["samples"] == 2000 and doc["cpu"] == cpu_info()
    assert {r["label"] for r in doc["candidates"]} == {"ort", "ov"}
    assert doc["winners"]["throughput"]["label"] in ("ort", "ov") and "openvino" in doc["environment"]
    assert "throughput winner:" in proc.stdout and f"wrote {out}" in proc.stdout
    bad = capsdeploy(
        "tune", "--checkpoint", tiny_run, "--candidates", "onnx-int4", "--out", tmp_path / "x.json"
    )
    assert (
        bad.returncode == 2
        and "unknown engine 'onnx-int4'" in bad.stderr
        and not (tmp_path / "x.json").exists()
    )
    few = capsdeploy("tune", "--checkpoint", tiny_run, "--samples", 100)
    assert few.returncode == 2 and "2000" in few.stderr


def test_a_candidate_that_fails_while_timed_is_rejected_and_the_tune_goes_on(tiny_run):
    from capsdeploy.errors import UsageError

    def timer(c, backend, feeds, batch):
        if c.label == "ov":
            raise UsageError("no inference completed in the timing window")
        return _timer(c, backend, feeds, batch)

    r = tune(
        str(tiny_run), [Candidate("ort", "ort"), Candidate("ov", "ov")], samples=16, batch_sizes=(1, 8),
        dataset="synthetic", build=_build(tiny_run), timer=timer,
    ).to_dict()  # fmt: skip
    rows = {x["label"]: x for x in r["candidates"]}
    assert rows["ov"]["verdict"] == "rejected" and "timing window" in rows["ov"]["reason"]
    assert rows["ov"]["timings"] == {}
    assert r["winners"]["throughput"]["label"] == "ort"


def _plan(report, tmp_path, **changes):
    from capsdeploy.bench.tune import repository_plan
    from capsdeploy.repository import BatchingOptions

    doc = json.loads(json.dumps(report))
    for key, value in changes.items():
        if key == "winner":
            doc["winners"]["repository"].update(value)
        else:
            doc[key] = value
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(doc))
    return repository_plan(path, BatchingOptions())


def test_a_file_tune_cannot_write_a_repository(report, tmp_path):
    from capsdeploy.errors import UsageError

    with pytest.raises(UsageError, match="without --model"):
        _plan(report, tmp_path, model="other.onnx")


def test_the_repository_is_calibrated_as_tune_validated_and_pinned_to_f32(report, tmp_path):
    from capsdeploy.bench.engine import BENCH_CALIB_SAMPLES

    plan = _plan(report, tmp_path, winner={"engine": "ov-int8", "label": "ov-int8", "options": {}})
    assert plan.export["calib_samples"] == BENCH_CALIB_SAMPLES
    assert plan.ov_options["inference_precision"] == "f32"
    # OpenVINO's defaults stay its defaults: no precision pinned.
    plan = _plan(report, tmp_path, winner={"engine": "ov-defaults-int8", "label": "ov-defaults-int8", "options": {}})
    assert plan.ov_options["inference_precision"] is None
