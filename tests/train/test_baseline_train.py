"""The baseline CNN goes through the same train -> eval -> export -> validate -> serve path."""

import json

import numpy as np
import pytest

from capsdeploy.model import BaselineCNN
from capsdeploy.model.checkpoint import load_run
from tests.helpers import capsdeploy

SMALL_CNN = json.dumps({"conv_channels": [8, 8, 4], "hidden": [32, 16]})


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "run"
    capsdeploy(
        "train", "--arch", "cnn-baseline", "--dataset", "synthetic", "--max-train-samples", 512,
        "--max-test-samples", 128, "--epochs", 2, "--lr", 3e-3, "--model-config", SMALL_CNN, "--out", out,
        check=True,
    )  # fmt: skip
    return out


def test_cnn_run_is_a_baseline_and_learns(cnn_run):
    cfg = json.loads((cnn_run / "config.json").read_text())
    assert cfg["arch"] == "cnn-baseline" and cfg["model"]["conv_channels"] == [8, 8, 4]
    model, info = load_run(cnn_run)
    assert isinstance(model, BaselineCNN) and info.arch == "cnn-baseline"
    history = [json.loads(line) for line in (cnn_run / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize(
    "flag", [["--routing-iters", "2"], ["--detach-inner-routing"], ["--model-config", '{"primary_caps": 8}']]
)
def test_capsule_only_options_are_refused(tmp_path, flag):
    proc = capsdeploy(
        "train", "--arch", "cnn-baseline", "--dataset", "synthetic", "--out", tmp_path / "r", *flag
    )
    assert proc.returncode == 2
    assert "capsule-only" in proc.stderr or "unknown model config keys" in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


def test_cnn_exports_validates_and_serves(cnn_run, tmp_path):
    onnx_path = tmp_path / "cnn.onnx"
    capsdeploy("export", "--checkpoint", cnn_run, "--output", onnx_path, check=True)
    report = json.loads(
        capsdeploy(
            "validate", "--checkpoint", cnn_run, "--model", onnx_path, "--num-samples", 64, "--json", "-",
            check=True,
        ).stdout
    )  # fmt: skip
    assert report["passed"] and set(report["outputs"]) == {"scores", "logits"}
    proc = capsdeploy("export", "--checkpoint", cnn_run, "--output", tmp_path / "d.onnx", "--with-decoder")
    assert proc.returncode == 2 and "no decoder" in proc.stderr

    repo = tmp_path / "repo"
    capsdeploy("export", "--format", "triton", "--checkpoint", cnn_run, "--output", repo, check=True)
    assert sorted(p.name for p in repo.iterdir()) == ["cnn_baseline"]

    import tritonclient.http as http

    from capsdeploy.serve.models import load_repository
    from tests.helpers.serving import serve_in_thread

    with serve_in_thread(load_repository(repo, "ort")) as (url, _):
        client = http.InferenceServerClient(url)
        x = http.InferInput("image", [2, 1, 28, 28], "FP32")
        x.set_data_from_numpy(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
        result = client.infer("cnn_baseline", [x])
        np.testing.assert_allclose(result.as_numpy("scores").sum(1), 1.0, rtol=1e-5)


def test_bench_runs_on_a_cnn_run(cnn_run):
    report = json.loads(
        capsdeploy("bench", "--checkpoint", cnn_run, "--engines", "torch,ort", "--batch-sizes", 2,
                   "--duration-s", 0.1, "--warmup-s", 0, "--json", "-", check=True).stdout
    )  # fmt: skip
    assert {r["engine"] for r in report["results"]} == {"torch", "ort"}
    assert all(r["gflop_per_image"] is None for r in report["results"])  # FLOPs are counted for CapsNet
