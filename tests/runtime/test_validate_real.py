"""Export the paper-size model trained on real digits; validate every precision on real test images."""

import json

import pytest

from tests.conftest import SHARED_MNIST
from tests.helpers import capsdeploy


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_real_digits_parity(paper_mnist_run, tmp_path, precision):
    model = tmp_path / f"{precision}.onnx"
    capsdeploy(
        "export",
        "--checkpoint",
        paper_mnist_run,
        "-o",
        model,
        "--precision",
        precision,
        "--input-dtype",
        "uint8",
        "--calib-samples",
        256,
        "--data-dir",
        SHARED_MNIST,
        check=True,
    )
    proc = capsdeploy(
        "validate",
        "--checkpoint",
        paper_mnist_run,
        "--model",
        model,
        "--data-dir",
        SHARED_MNIST,
        "--num-samples",
        1000,
        "--json",
        "-",
    )
    r = json.loads(proc.stdout)
    assert proc.returncode == 0 and r["passed"], r["failures"]
    if precision == "fp32":
        assert r["outputs"]["scores"]["max_abs_error"] <= 1e-5 and r["top1_agreement"] == 1.0
    if precision == "fp16":
        assert r["top1_agreement"] >= 0.999
    if precision == "int8":
        assert abs(r["reference_accuracy"] - r["candidate_accuracy"]) <= 0.002 + 1e-9
