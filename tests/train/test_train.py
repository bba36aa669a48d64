import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from capsdeploy.model.checkpoint import load_run
from tests.helpers import capsdeploy, tiny_train_args, weights


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    capsdeploy(*tiny_train_args(out, epochs=3), check=True)
    return out


def test_run_directory_contents(reference_run):
    out = reference_run
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"]["name"] == "synthetic" and cfg["model"]["primary_caps"] == 4
    assert cfg["input"]["normalization"]["mean"] == [0.0]
    assert cfg["metrics"]["test_acc"] == max(h["test_acc"] for h in history)
    last = json.loads((out / "last" / "config.json").read_text())
    assert last["metrics"]["epoch"] == 3
    assert (out / "resume" / "state.pt").is_file()
    load_run(out / "last")


def test_existing_run_is_not_overwritten(reference_run):
    before = weights(reference_run)
    proc = capsdeploy(*tiny_train_args(reference_run))
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert all(torch.equal(before[k], v) for k, v in weights(reference_run).items())


def _wait_for_epochs(out, n, proc, timeout=120):
    deadline = time.time() + timeout
    metrics = out / "metrics.jsonl"
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("training too slow")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_the_same_weights(reference_run, tmp_path, sig):
    out = tmp_path / "run"
    # More samples per epoch than the reference would change the data; same args, interrupted.
    cmd = [sys.executable, "-m", "capsdeploy", *map(str, tiny_train_args(out, epochs=3))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(out, 1, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT and proc.returncode != 0:
        assert proc.returncode == 130 and "--resume" in err
    done = len((out / "metrics.jsonl").read_text().splitlines())
    assert done < 3 or proc.returncode == 0
    capsdeploy("train", "--resume", out, check=True)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    ref, got = weights(reference_run / "last"), weights(out / "last")
    for k in ref:
        assert torch.allclose(ref[k], got[k], atol=1e-6), k


def test_resume_can_extend_epochs(reference_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    capsdeploy("train", "--resume", out, "--epochs", 4, check=True)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_torchrun_two_processes_match_one_process_with_double_batch(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    capsdeploy(*tiny_train_args(single, epochs=1, samples=128, batch=32), check=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        "-m",
        "capsdeploy",
        *map(str, tiny_train_args(ddp, epochs=1, samples=128, batch=16)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = json.loads((ddp / "config.json").read_text())
    assert cfg["training"]["world_size"] == 2
    a, b = weights(single / "last"), weights(ddp / "last")
    moved = weights(single / "last")
    assert any(not torch.allclose(v, torch.zeros_like(v)) for v in moved.values())
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5), k
