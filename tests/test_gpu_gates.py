"""CAPSDEPLOY_REQUIRE_GPU / CAPSDEPLOY_REQUIRE_TRT turn the GPU tests' skips into failures, so a
machine meant to test the GPU paths cannot pass by skipping them. Checked here, where neither
CUDA nor TensorRT is present, by running two real GPU tests in a child pytest."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TORCH_CUDA = "tests/runtime/test_gpu_trt.py::test_torch_cuda_validate"
TRT = "tests/runtime/test_gpu_trt.py::test_min_batch_profile_warmup_batcher_and_out_of_profile"


def _pytest(env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPSDEPLOY_REQUIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsfE", "-p", "no:cacheprovider", TORCH_CUDA, TRT],
        cwd=ROOT, env={**env, **env_extra}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the gates where no CUDA device is visible")
def test_require_switches_turn_skips_into_failures():
    plain = _pytest({})
    assert plain.returncode == 0 and "2 skipped" in plain.stdout, plain.stdout
    # A failure at fixture setup is reported as an error: either way pytest exits 1.
    trt_only = _pytest({"CAPSDEPLOY_REQUIRE_TRT": "1"})
    assert trt_only.returncode == 1 and "1 skipped, 1 error" in trt_only.stdout, trt_only.stdout
    assert "ERROR " + TRT in trt_only.stdout and "CAPSDEPLOY_REQUIRE_TRT=1 but" in trt_only.stdout
    gpu = _pytest({"CAPSDEPLOY_REQUIRE_GPU": "1"})
    assert gpu.returncode == 1 and "2 error" in gpu.stdout and "skipped" not in gpu.stdout, gpu.stdout
    assert "CAPSDEPLOY_REQUIRE_GPU=1 but needs a CUDA device" in gpu.stdout
