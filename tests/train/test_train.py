import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from capsdeploy.model import CapsNet, CapsNetConfig
from capsdeploy.model.checkpoint import load_run
from tests.helpers import capsdeploy, tiny_train_args, wait_until, weights


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
    # 10% of the 256 training images held out, stratified; selection by validation accuracy.
    assert cfg["dataset"]["val_fraction"] == 0.1 and 20 <= cfg["dataset"]["val_samples"] <= 30
    assert cfg["dataset"]["train_samples"] + cfg["dataset"]["val_samples"] == 256
    best = max(history, key=lambda h: h["val_acc"])  # the first of equals, as the loop keeps it
    assert cfg["metrics"]["epoch"] == best["epoch"] and cfg["metrics"]["val_acc"] == best["val_acc"]
    assert "test_acc" in cfg["metrics"]  # reported, not used to choose
    last = json.loads((out / "last" / "config.json").read_text())
    assert last["metrics"]["epoch"] == 3
    assert (out / "resume" / "state.pt").is_file()
    load_run(out / "last")


def _state(run_dir):
    return torch.load(run_dir / "resume" / "state.pt", weights_only=True)


def test_the_weight_average_is_delivered_not_the_raw_weights(reference_run):
    state = _state(reference_run)
    raw, averaged = state["model"], state["average"]
    assert int(averaged["n_averaged"]) == 3 * 8  # 230 training images / 32 = 8 steps per epoch
    last = weights(reference_run / "last")
    for k, v in last.items():
        assert torch.equal(v, averaged[f"module.{k}"]), k
    assert not torch.equal(last["conv1.weight"], raw["conv1.weight"])


def test_ema_decay_zero_delivers_the_raw_weights(tmp_path):
    out = tmp_path / "run"
    capsdeploy(*tiny_train_args(out, epochs=1), "--ema-decay", 0, "--val-fraction", 0, check=True)
    state = _state(out)
    assert "average" not in state
    assert all(torch.equal(v, state["model"][k]) for k, v in weights(out).items())


def test_selection_never_looks_at_the_test_split(tmp_path):
    """Same seed, same training data, another test split: the same epoch is delivered."""
    a, b = tmp_path / "a", tmp_path / "b"
    capsdeploy(*tiny_train_args(a, epochs=3), check=True)
    capsdeploy(*tiny_train_args(b, epochs=3), "--max-test-samples", 16, check=True)
    ma = json.loads((a / "config.json").read_text())["metrics"]
    mb = json.loads((b / "config.json").read_text())["metrics"]
    assert ma["epoch"] == mb["epoch"] and ma["val_acc"] == mb["val_acc"]
    assert torch.equal(weights(a)["conv1.weight"], weights(b)["conv1.weight"])


def test_without_validation_the_last_epoch_is_delivered(tmp_path):
    out = tmp_path / "run"
    proc = capsdeploy(*tiny_train_args(out, epochs=2), "--val-fraction", 0, check=True)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["metrics"]["epoch"] == 2 and "val_acc" not in cfg["metrics"]
    assert cfg["dataset"]["val_samples"] == 0 and cfg["dataset"]["train_samples"] == 256
    assert all(torch.equal(v, weights(out / "last")[k]) for k, v in weights(out).items())
    assert "delivered epoch 2" in proc.stdout


def test_existing_run_is_not_overwritten(reference_run):
    before = weights(reference_run)
    proc = capsdeploy(*tiny_train_args(reference_run))
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert all(torch.equal(before[k], v) for k, v in weights(reference_run).items())


def _wait_for_epochs(out, n, proc, timeout=120):
    metrics = out / "metrics.jsonl"

    def epochs_done() -> bool:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return True
        assert proc.poll() is None, "training ended before it could be interrupted"
        return False

    wait_until(epochs_done, timeout, interval=0.05, what=f"{n} epoch(s) written (training too slow)")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_the_same_weights(reference_run, tmp_path, sig):
    out = tmp_path / "run"
    # More samples per epoch than the reference would change the data; same args, interrupted.
    cmd = [sys.executable, "-m", "capsdeploy", *map(str, tiny_train_args(out, epochs=3))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(out, 1, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # A run that ended before the signal arrived tests nothing: fail rather than pass.
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err[-2000:]
    if sig == signal.SIGINT:
        assert "--resume" in err and "Traceback" not in err
    assert len((out / "metrics.jsonl").read_text().splitlines()) < 3
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
    # No hold-out: 128 images split evenly into 4 global batches of 32 either way.
    capsdeploy(*tiny_train_args(single, epochs=1, samples=128, batch=32), "--val-fraction", 0, check=True)
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
        "--val-fraction",
        "0",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = json.loads((ddp / "config.json").read_text())
    assert cfg["training"]["world_size"] == 2
    a, b = weights(single / "last"), weights(ddp / "last")
    # Matching is only meaningful if training moved every tensor away from its initial value.
    torch.manual_seed(3)  # the seed of tiny_train_args: the loop's initialization
    init = CapsNet(
        CapsNetConfig.from_dict(json.loads((single / "config.json").read_text())["model"])
    ).state_dict()
    for k, v in init.items():
        assert (a[k] - v).abs().max() > 1e-4, f"{k} did not move"
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5), k


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_ranks(out, extra_args, port):
    """Two gloo ranks started by hand (as torchrun would), so a signal can reach one alone."""
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        cmd = [sys.executable, "-m", "capsdeploy", *map(str, extra_args)]
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    return procs


def test_sigterm_to_one_rank_stops_both_at_the_same_batch_and_resumes(tmp_path):
    out = tmp_path / "ddp"
    args = tiny_train_args(out, epochs=6, samples=2048, batch=16)
    ranks = _launch_ranks(out, args, _free_port())
    try:
        _wait_for_epochs(out, 1, ranks[0], timeout=240)
        ranks[1].send_signal(signal.SIGTERM)  # a scheduler reaching one rank first
        results = [p.communicate(timeout=120) for p in ranks]
    finally:
        for p in ranks:
            p.kill()
    for p, (_, err) in zip(ranks, results, strict=True):
        assert p.returncode == 130, err[-3000:]  # old code: rank 0 hung or died in all-reduce
    assert "--resume" in results[0][1]
    state = torch.load(out / "resume" / "state.pt", weights_only=True)
    assert state["progress"]["epoch"] < 6  # stopped mid-run, its place saved
    ranks = _launch_ranks(out, ["train", "--resume", out], _free_port())
    for p in ranks:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
