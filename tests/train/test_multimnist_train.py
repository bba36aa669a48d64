"""Training on MultiMNIST pairs: two labels, fresh pairs per epoch, scored as the paper does."""

import json

import numpy as np
import pytest
import torch

from capsdeploy.data import load_split
from capsdeploy.data.multimnist import both_found
from capsdeploy.train.batches import DigitPairs, correct
from tests.helpers import TINY_JSON, capsdeploy


def test_torch_and_numpy_criteria_agree():
    rng = np.random.default_rng(0)
    scores = rng.random((500, 10)).astype(np.float32)
    labels = np.stack([rng.permutation(10)[:2] for _ in range(500)])
    labels[:50] = np.argsort(-scores[:50], axis=1)[:, :2][:, ::-1]  # some right, in either order
    expected = both_found(scores, labels)
    assert expected[:50].all() and not expected[50:].all()
    assert np.array_equal(correct(torch.from_numpy(scores), torch.from_numpy(labels)).numpy(), expected)


def test_pairs_are_drawn_anew_each_epoch_and_reproducibly():
    data = load_split("synthetic", "train", limit=64)
    source = DigitPairs(data, pairs_per_digit=2)
    assert len(source) == 128
    source.start_epoch(seed=0, epoch=0)
    image, labels, parts = source.batch(torch.arange(8))
    assert image.shape == (8, 1, 36, 36) and labels.shape == (8, 2) and parts.shape == (8, 2, 1, 36, 36)
    assert float(image.max()) <= 1.0 and torch.equal(image, parts.amax(dim=1))
    first = image.clone()
    source.start_epoch(seed=0, epoch=1)
    assert not torch.equal(source.batch(torch.arange(8))[0], first)
    source.start_epoch(seed=0, epoch=0)
    assert torch.equal(source.batch(torch.arange(8))[0], first)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi") / "run"
    capsdeploy("train", "--multimnist", "--dataset", "synthetic", "--max-train-samples", 256,
               "--max-test-samples", 64, "--epochs", 2, "--batch-size", 32, "--lr", 3e-3,
               "--model-config", TINY_JSON, "--out", out, check=True)  # fmt: skip
    return out


def test_run_reports_the_pair_score_eval_reproduces(multi_run):
    cfg = json.loads((multi_run / "config.json").read_text())
    assert cfg["input"]["height"] == 36 and cfg["dataset"]["multimnist"] == {"pairs_per_digit": 2}
    history = [json.loads(line) for line in (multi_run / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    report = json.loads(
        capsdeploy("eval", "--multimnist", "--checkpoint", multi_run, "--max-samples", 64, "--json", "-",
                   check=True).stdout
    )  # fmt: skip
    assert report["num_pairs"] == 64
    # The run's test pairs are eval's (seed 0), so the two scores are the same number.
    assert report["models"][0]["accuracy"] == pytest.approx(cfg["metrics"]["test_acc"])


def test_multimnist_eval_refuses_a_single_digit_model(tiny_run):
    proc = capsdeploy("eval", "--multimnist", "--checkpoint", tiny_run)
    assert proc.returncode == 2 and "--multimnist" in proc.stderr


def test_viz_draws_the_two_longest_capsules(multi_run, tmp_path):
    report = json.loads(
        capsdeploy("viz", "multimnist", "--checkpoint", multi_run, "--count", 6, "--out", tmp_path / "m.png",
                   "--json", "-", check=True).stdout
    )  # fmt: skip
    assert (tmp_path / "m.png").stat().st_size > 1000 and len(report["items"]) == 6
    for it in report["items"]:
        assert len(set(it["predicted"])) == 2 and it["labels"][0] != it["labels"][1]
        assert it["correct"] == (set(it["predicted"]) == set(it["labels"]))


def test_multimnist_and_pad_are_exclusive(tmp_path):
    proc = capsdeploy("train", "--multimnist", "--pad", 6, "--dataset", "synthetic", "--out", tmp_path / "r")
    assert proc.returncode == 2 and "--pad" in proc.stderr
