"""Export the paper-size model trained on real digits; validate every precision on real test images."""

import json

import pytest

from tests.helpers import SHARED_MNIST, capsdeploy

# The paper run is trained once (65 s); tests/conftest.py's SAME_WORKER runs this file and the
# run's other user on one xdist worker, so that no worker waits for another to train it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(paper_mnist_run, tmp_path_factory):
    """precision -> the uint8-input file exported at it, each exported once: the FP32 file
    serves ort, ov and ov-bf16 (OpenVINO runs it in bf16), the INT8 file ort and ov-int8."""
    folder, made = tmp_path_factory.mktemp("paper-exports"), {}

    def get(precision: str):
        if precision not in made:
            model = folder / f"{precision}.onnx"
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
            made[precision] = model
        return made[precision]

    return get


@pytest.mark.parametrize(
    "precision, engine",
    [
        ("fp32", "ort"),
        ("fp16", "ort"),
        ("int8", "ort"),
        ("fp32", "ov"),
        ("bf16", "ov-bf16"),
        ("int8", "ov-int8"),
    ],
)
def test_real_digits_parity(paper_mnist_run, exported, precision, engine):
    if engine == "ov-bf16":
        from capsdeploy.runtime.ov_backend import device_capabilities

        if "BF16" not in device_capabilities():
            pytest.skip(
                "OpenVINO reports no BF16 on this CPU (its refusal: tests/runtime/test_ov_backend.py)"
            )
    model = exported("fp32" if precision == "bf16" else precision)  # ov-bf16 runs the FP32 file in bf16
    proc = capsdeploy(
        "validate",
        "--checkpoint",
        paper_mnist_run,
        "--model",
        model,
        "--engine",
        engine,
        "--data-dir",
        SHARED_MNIST,
        "--num-samples",
        1000,
        "--json",
        "-",
    )
    r = json.loads(proc.stdout)
    assert proc.returncode == 0 and r["passed"], r["failures"]
    assert r["precision"] == precision  # the tolerance it was judged by
    if precision == "fp32":
        assert r["outputs"]["scores"]["max_abs_error"] <= 1e-5 and r["top1_agreement"] == 1.0
    if precision == "bf16":
        assert r["math"].startswith("BF16") and r["top1_agreement"] >= 0.999
        assert r["reference_accuracy"] - r["candidate_accuracy"] <= 0.001 + 1e-9
    if precision == "fp16":
        assert r["top1_agreement"] >= 0.999
    if precision == "int8":
        assert abs(r["reference_accuracy"] - r["candidate_accuracy"]) <= 0.002 + 1e-9
