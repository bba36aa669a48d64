import os
from pathlib import Path

import pytest
import torch

from capsdeploy.model import CapsNetConfig

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
IN_CI = os.environ.get("CI") == "true"

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


@pytest.fixture
def mnist_dir() -> Path:
    """The real MNIST files in ../shared; CI must have them, elsewhere skip."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        if IN_CI:
            pytest.fail(f"CI=true but the real MNIST files are missing from {SHARED_MNIST}")
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    return SHARED_MNIST


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason="needs a CUDA device; none is visible (torch.cuda.is_available() is False)"
    )
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
