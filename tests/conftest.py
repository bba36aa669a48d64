import os
from pathlib import Path

import pytest
import torch

from capsdeploy.model import CapsNetConfig

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
IN_CI = os.environ.get("CI") == "true"
NO_CUDA = "needs a CUDA device; none is visible (torch.cuda.is_available() is False)"

# A few capsules instead of the paper's 1152: same code paths, milliseconds per step.
TINY = {
    "conv1_channels": 16,
    "primary_caps": 4,
    "primary_dim": 4,
    "digit_dim": 8,
    "decoder_hidden": [32, 64],
}


@pytest.fixture
def tiny_cfg() -> CapsNetConfig:
    return CapsNetConfig(**TINY)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """Tests never touch the network, nor the user's cache."""
    import capsdeploy.data.download as dl

    def refuse(url, dest):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(dl, "_fetch", refuse)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CAPSDEPLOY_DATA", raising=False)
    torch.manual_seed(0)


# On a machine meant to test the GPU paths a skip would hide that nothing ran: these turn the
# skips into failures (scripts/gpu_check.sh sets CAPSDEPLOY_REQUIRE_GPU=1).
REQUIRE_GPU = os.environ.get("CAPSDEPLOY_REQUIRE_GPU") == "1"
REQUIRE_TRT = os.environ.get("CAPSDEPLOY_REQUIRE_TRT") == "1"


def skip_or_fail(reason: str, required: bool, switch: str) -> None:
    if required:
        pytest.fail(f"{switch}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def trt_ready():
    """Skip, with the reason, where TensorRT or a CUDA device is missing (fail with
    CAPSDEPLOY_REQUIRE_TRT=1)."""
    from capsdeploy.runtime.trt.environment import tensorrt_missing

    missing = tensorrt_missing()
    if missing:
        skip_or_fail("; ".join(missing), REQUIRE_TRT, "CAPSDEPLOY_REQUIRE_TRT")


@pytest.fixture(autouse=True)
def _gpu_gate(request):
    """Tests marked gpu skip, with the reason, where no CUDA device is visible; they fail
    instead with CAPSDEPLOY_REQUIRE_GPU=1 (or, for TensorRT tests, CAPSDEPLOY_REQUIRE_TRT=1)."""
    if request.node.get_closest_marker("gpu") is None or torch.cuda.is_available():
        return
    if REQUIRE_TRT and "trt_ready" in request.fixturenames:
        skip_or_fail(NO_CUDA, True, "CAPSDEPLOY_REQUIRE_TRT")
    skip_or_fail(NO_CUDA, REQUIRE_GPU, "CAPSDEPLOY_REQUIRE_GPU")


def pytest_collection_modifyitems(config, items):
    """Without CUDA, gpu tests are skipped at collection, so none of their fixtures (a trained
    run, an exported repository) is built for nothing; with a REQUIRE switch set, `_gpu_gate`
    fails them instead."""
    if torch.cuda.is_available() or REQUIRE_GPU or REQUIRE_TRT:
        return
    skip = pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def mnist_dir() -> Path:
    """The real MNIST files in ../shared; CI must have them, elsewhere skip."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        if IN_CI:
            pytest.fail(f"CI=true but the real MNIST files are missing from {SHARED_MNIST}")
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    return SHARED_MNIST


def make_run(run_dir: Path, overrides: dict | None = None, seed: int = 0, dataset: str = "synthetic") -> Path:
    """An untrained run directory (random weights): enough for parity tests."""
    from capsdeploy.model import CapsNet
    from capsdeploy.model.checkpoint import build_config_doc, default_normalization, save_run

    torch.manual_seed(seed)
    cfg = CapsNetConfig(**{**TINY, **(overrides or {})})
    doc = build_config_doc(
        cfg,
        [str(i) for i in range(cfg.num_classes)],
        default_normalization(cfg.in_channels),
        dataset={"name": dataset, "train_split": "train", "test_split": "t10k"},
    )
    return save_run(run_dir, CapsNet(cfg), doc)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("tiny") / "run")


@pytest.fixture(scope="session")
def paper_mnist_run(tmp_path_factory):
    """The paper-size model after 2 short epochs on 2,048 real digits (~2 minutes on 2 cores)."""
    if not (SHARED_MNIST / "digits10k-images-idx3-ubyte.gz").is_file():
        if IN_CI:
            pytest.fail(f"CI=true but the real MNIST files are missing from {SHARED_MNIST}")
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    from tests.helpers import capsdeploy

    out = tmp_path_factory.mktemp("paper") / "run"
    capsdeploy(
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        SHARED_MNIST,
        "--train-split",
        "digits10k",
        "--test-split",
        "t10k",
        "--epochs",
        2,
        "--max-train-samples",
        2048,
        "--max-test-samples",
        1000,
        "--val-fraction",  # a fixed short schedule: the last epoch, all 2,048 digits trained on
        0,
        "--batch-size",  # pinned: the parity thresholds below were set on this schedule
        32,
        "--lr-decay",
        0.9,
        "--out",
        out,
        check=True,
    )
    return out
