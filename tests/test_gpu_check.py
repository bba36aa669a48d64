"""scripts/gpu_check.sh: the dry run passes here (it would start on the device machine), and a
real run on a machine without CUDA fails with a report saying so instead of passing empty."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _check(*args, out):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", "scripts/gpu_check.sh", *args, "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_dry_run_would_start_and_plans_every_step(tmp_path):
    proc = _check("--dry-run", out=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] and report["dry_run"] and report["problems"] == []
    assert report["steps_planned"][:5] == [
        "environment",
        "pytest_gpu",
        "validate",
        "bench_engines",
        "bench_workers",
    ]
    assert len([s for s in report["steps_planned"] if s.startswith("standin_")]) == 5
    collected = report["gpu_tests_collected"]
    assert any("test_torch_cuda_validate" in t for t in collected) and len(collected) >= 10
    assert 0 < report["travel_bytes"] < 64 << 20
    assert sum(report["limits_s"].values()) < 8 * 60


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no CUDA device is visible")
def test_a_real_run_without_cuda_fails_with_a_report(tmp_path):
    proc = _check(out=tmp_path)
    assert proc.returncode == 1 and "no CUDA device" in proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert (
        report["ok"] is False and report["steps"] == {} and report["environment"]["cuda_available"] is False
    )
