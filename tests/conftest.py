import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from capsdeploy.model import CapsNetConfig
from tests.helpers import IN_CI, NO_CUDA, SHARED_MNIST, TINY, build_once, capsdeploy, make_run
from tests.helpers.workers import make_scheduler, share_cores


def pytest_configure(config):
    share_cores()


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: unknown to a pytest run without it
def pytest_xdist_make_scheduler(config, log):
    return make_scheduler(config, log)


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
    fails them instead. scripts/test.sh runs the `exclusive` tests on their own first and sets
    CAPSDEPLOY_DESELECT_EXCLUSIVE for the parallel run (a marker filter, not -m, so a user's
    -m cannot bring them back into it)."""
    if os.environ.get("CAPSDEPLOY_DESELECT_EXCLUSIVE") == "1":
        dropped = [i for i in items if "exclusive" in i.keywords]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [i for i in items if "exclusive" not in i.keywords]
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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One untrained tiny run for the whole test run (xdist workers share it, and so can share
    its exports). Tests read it; one that changes a run makes its own with make_run."""
    return build_once(tmp_path_factory, "tiny", lambda folder: make_run(folder / "run")) / "run"


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """``tiny_export(**ExportOptions fields)`` -> tiny_run's ONNX file exported with them, once
    per test run for each set of options: an export takes seconds, and most tests only read the
    file. A test that checks the export itself, or changes the file, exports its own."""
    from capsdeploy.export import ExportOptions, export_onnx

    made: dict[str, Path] = {}

    def get(dest: Path | None = None, **opts) -> Path:
        """The shared file, or a copy of it at ``dest`` (a test's own file, named as it wants)."""
        key = "-".join(f"{k}={v}" for k, v in sorted(opts.items())) or "default"
        if key not in made:
            name = "export-" + re.sub(r"[^A-Za-z0-9=_.-]", "_", key)
            folder = build_once(
                tmp_path_factory, name, lambda d: export_onnx(tiny_run, d / "m.onnx", ExportOptions(**opts))
            )
            made[key] = folder / "m.onnx"
        if dest is None:
            return made[key]
        dest.parent.mkdir(parents=True, exist_ok=True)  # as export_onnx does
        shutil.copyfile(made[key], dest)
        return dest

    return get


@pytest.fixture(scope="session")
def paper_mnist_run(tmp_path_factory):
    """The paper-size model after 2 short epochs on 2,048 real digits (~2 minutes on 2 cores)."""
    if not (SHARED_MNIST / "digits10k-images-idx3-ubyte.gz").is_file():
        if IN_CI:
            pytest.fail(f"CI=true but the real MNIST files are missing from {SHARED_MNIST}")
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    # Built once per test run, also when several xdist workers run tests that use it.
    return build_once(tmp_path_factory, "paper", _train_paper_run) / "run"


def _train_paper_run(folder: Path) -> None:
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
        folder / "run",
        check=True,
    )
