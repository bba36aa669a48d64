"""The paper-size model on real digits: a short run must already learn MNIST."""

import json

import pytest

from tests.helpers import SHARED_MNIST, capsdeploy


@pytest.mark.slow
def test_paper_model_learns_real_digits(paper_mnist_run):
    out = paper_mnist_run
    report = json.loads(
        capsdeploy(
            "eval",
            "--checkpoint",
            out,
            "--data-dir",
            SHARED_MNIST,
            "--max-samples",
            1000,
            "--json",
            "-",
            check=True,
        ).stdout
    )
    assert report["num_samples"] == 1000 and report["split"] == "t10k"
    # Chance is 10%; a wrong routing axis or a broken loss stays far below this.
    assert report["accuracy"] >= 0.85, report["accuracy"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"] == {
        "name": "mnist",
        "train_split": "digits10k",
        "test_split": "t10k",
        "train_samples": 2048,
        "val_fraction": 0.0,
        "val_samples": 0,
        "test_samples": 1000,
    }
