"""What tests share: the CLI runners, tiny runs, servers, polling and a build-once cache. Test
modules import from here; conftest files hold fixtures only."""

from tests.helpers.cli import capsdeploy, capsdeploy_process, tensorrt_ready, torch_blocked
from tests.helpers.runs import (
    IN_CI,
    NO_CUDA,
    SHARED_MNIST,
    TINY,
    TINY_JSON,
    make_run,
    tiny_train_args,
    weights,
)
from tests.helpers.shared import build_once
from tests.helpers.wait import wait_until

__all__ = [
    "IN_CI",
    "NO_CUDA",
    "SHARED_MNIST",
    "TINY",
    "TINY_JSON",
    "build_once",
    "capsdeploy",
    "capsdeploy_process",
    "make_run",
    "tensorrt_ready",
    "tiny_train_args",
    "torch_blocked",
    "wait_until",
    "weights",
]
