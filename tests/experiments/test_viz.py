"""`capsdeploy viz`: the perturbation grid and the drawn pictures, on torch and ort."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from capsdeploy.data import load_split
from capsdeploy.data.preprocess import prepare_batch
from capsdeploy.experiments.viz import DELTAS, perturbations, pick
from capsdeploy.model.checkpoint import load_run
from tests.helpers import capsdeploy


def test_deltas_are_the_papers():
    assert DELTAS.tolist() == [-0.25, -0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25]


def test_perturbations_move_one_dimension_of_the_winner_only():
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(10, 16)).astype(np.float32)
    out = perturbations(poses, winner=3)
    assert out.shape == (16 * 11, 10, 16) and out.dtype == np.float32
    assert not out[:, [k for k in range(10) if k != 3]].any()  # the decoder's mask
    for d in range(16):
        for j, delta in enumerate(DELTAS):
            row = out[d * 11 + j, 3]
            expected = poses[3].copy()
            expected[d] += delta
            np.testing.assert_allclose(row, expected, atol=1e-6)


def test_pick_first_or_failures():
    labels = np.array([0, 1, 2, 3, 4])
    predicted = np.array([0, 2, 2, 0, 4])
    assert pick(predicted, labels, 3, failures=False).tolist() == [0, 1, 2]
    assert pick(predicted, labels, 3, failures=True).tolist() == [1, 3]


@pytest.mark.parametrize("engine", ["torch", "ort"])
def test_reconstructions_report_what_the_model_predicts(tiny_run, tmp_path, engine):
    png = tmp_path / "r.png"
    report = json.loads(
        capsdeploy("viz", "reconstructions", "--checkpoint", tiny_run, "--count", 12, "--columns", 6,
                   "--engine", engine, "--out", png, "--json", "-", check=True).stdout
    )  # fmt: skip
    assert Image.open(png).format == "PNG"
    data = load_split("synthetic", "t10k", limit=12)
    model, info = load_run(tiny_run)
    with torch.no_grad():
        predicted = model(torch.from_numpy(prepare_batch(data.images, "float32", info.normalization)))[0]
    predicted = predicted.argmax(1).numpy()
    assert [it["predicted"] for it in report["items"]] == [str(p) for p in predicted]
    assert report["errors"] == int((predicted != data.labels).sum())


def test_failures_are_all_mistakes(tiny_run, tmp_path):
    report = json.loads(
        capsdeploy("viz", "reconstructions", "--checkpoint", tiny_run, "--failures", "--count", 5,
                   "--out", tmp_path / "f.png", "--json", "-", check=True).stdout
    )  # fmt: skip
    assert len(report["items"]) == 5 and not any(it["correct"] for it in report["items"])


def test_dimensions_on_torch_and_ort_pick_the_same_digits(tiny_run, tmp_path):
    picked = []
    for engine in ("torch", "ort"):
        png = tmp_path / f"{engine}.png"
        report = json.loads(
            capsdeploy("viz", "dimensions", "--checkpoint", tiny_run, "--digits", 2, "--engine", engine,
                       "--out", png, "--json", "-", check=True).stdout
        )  # fmt: skip
        assert Image.open(png).size[0] > 400
        picked.append(report["digits"])
    assert picked[0] == picked[1] and len(picked[0]) == 2
    assert picked[0][0]["label"] != picked[0][1]["label"]


def test_a_cnn_has_nothing_to_draw(tmp_path):
    from capsdeploy.model import BaselineCNN, CNNConfig
    from capsdeploy.model.checkpoint import build_config_doc, default_normalization, save_run

    cfg = CNNConfig(conv_channels=(2, 2, 2), hidden=(4, 4))
    run = save_run(tmp_path / "cnn", BaselineCNN(cfg), build_config_doc(cfg, list("0123456789"),
                   default_normalization(1), dataset={"name": "synthetic", "test_split": "t10k"}))  # fmt: skip
    proc = capsdeploy("viz", "reconstructions", "--checkpoint", run, "--out", tmp_path / "x.png")
    assert proc.returncode == 2 and "cnn-baseline" in proc.stderr and not (tmp_path / "x.png").exists()
