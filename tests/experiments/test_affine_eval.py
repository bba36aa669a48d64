"""`eval --affine`: each run scored on the translated and affine sets, on torch and ort alike."""

import json

import pytest
import torch

from capsdeploy.data import load_split
from capsdeploy.data.affine import affine_set, translated_set
from capsdeploy.data.preprocess import prepare_batch
from capsdeploy.model import BaselineCNN, CNNConfig
from capsdeploy.model.checkpoint import build_config_doc, default_normalization, load_run, save_run
from tests.helpers import capsdeploy, make_run


@pytest.fixture(scope="module")
def runs40(tmp_path_factory):
    root = tmp_path_factory.mktemp("affine")
    caps = make_run(root / "caps", {"image_size": 40}, dataset="synthetic")
    torch.manual_seed(1)
    cfg = CNNConfig(image_size=40, conv_channels=(4, 4, 2), hidden=(16, 8))
    doc = build_config_doc(cfg, [str(i) for i in range(10)], default_normalization(1),
                           dataset={"name": "synthetic", "train_split": "train", "test_split": "t10k"})  # fmt: skip
    cnn = save_run(root / "cnn", BaselineCNN(cfg), doc)
    return caps, cnn


def test_scores_are_the_models_own_on_the_generated_sets(runs40):
    caps, cnn = runs40
    report = json.loads(
        capsdeploy("eval", "--affine", "--checkpoint", caps, "--checkpoint", cnn, "--max-samples", 200,
                   "--seed", 3, "--json", "-", check=True).stdout
    )  # fmt: skip
    assert report["num_samples"] == 200 and report["canvas"] == 40 and report["seed"] == 3
    assert [m["arch"] for m in report["models"]] == ["capsnet", "cnn-baseline"]
    source = load_split("synthetic", "t10k", limit=200)
    for m, run in zip(report["models"], runs40, strict=True):
        model, info = load_run(run)
        for name, data in [("translated", translated_set(source, 3)), ("affine", affine_set(source, 3)[0])]:
            x = torch.from_numpy(prepare_batch(data.images, "float32", info.normalization))
            with torch.no_grad():
                acc = float((model(x)[0].argmax(1).numpy() == data.labels).mean())
            assert m[name] == pytest.approx(acc), (run, name)


def test_ort_agrees_with_torch(runs40):
    args = ["eval", "--affine", "--checkpoint", runs40[0], "--max-samples", 100, "--json", "-"]
    torch_rows = json.loads(capsdeploy(*args, check=True).stdout)["models"]
    ort_rows = json.loads(capsdeploy(*args, "--engine", "ort", check=True).stdout)["models"]
    assert ort_rows[0]["engine"] == "ort"
    for k in ("translated", "affine"):
        assert abs(torch_rows[0][k] - ort_rows[0][k]) <= 0.01  # at most one flipped near-tie in 100


def test_a_28px_model_is_refused_with_the_protocol(tiny_run):
    proc = capsdeploy("eval", "--affine", "--checkpoint", tiny_run)
    assert proc.returncode == 2 and "--pad 6" in proc.stderr


def test_a_padded_run_is_evaluated_validated_and_calibrated_on_its_canvas(runs40, tmp_path):
    """28x28 digits are centred on the 40x40 canvas wherever a --pad run meets its dataset."""
    caps, cnn = runs40
    for run in runs40:
        proc = capsdeploy("eval", "--checkpoint", run, "--max-samples", 20, "--json", "-", check=True)
        assert json.loads(proc.stdout)["num_samples"] == 20
    model = tmp_path / "int8.onnx"
    capsdeploy("export", "--checkpoint", caps, "--output", model, "--precision", "int8", "--calib-samples", 32,
               check=True)  # fmt: skip
    report = json.loads(
        capsdeploy(
            "validate", "--checkpoint", caps, "--model", model, "--num-samples", 32, "--json", "-"
        ).stdout
    )
    assert report["num_samples"] == 32
