"""How pytest-xdist workers (scripts/test.sh starts one per core) share the machine and the suite."""

from __future__ import annotations

import os

# A unit of work is a test file, so that its module fixtures (a trained run, a served repository,
# the rolling-restart scenario) are built once, not once per worker. The files of one group here
# are one unit: they share an expensive session fixture that a worker would otherwise wait on
# another to build. (xdist_group marks would say so, but --dist loadgroup ignores them on
# pytest 9.2: pytest-xdist issue 1386.)
SAME_WORKER = {
    "tests/runtime/test_validate_real.py": "paper_mnist_run",
    "tests/train/test_real_mnist.py": "paper_mnist_run",
}
# The longest units go out first (the rest largest first, by test count), so that none is left
# running alone at the end.
FIRST = ("paper_mnist_run", "tests/deploy/test_rolling_restart.py")


def share_cores() -> None:
    """Each worker's torch takes its share of the cores: with every worker running torch on all
    of them, their threads would wait on each other."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def unit_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return SAME_WORKER.get(path, path)


def make_scheduler(config, log):
    """For --dist load (the default) and loadgroup: units as above; other --dist values keep
    xdist's own scheduler (None)."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from collections import OrderedDict

    from xdist.scheduler import LoadScopeScheduling

    class FirstOut(OrderedDict):
        def __setitem__(self, unit, tests):
            super().__setitem__(unit, tests)
            if unit in FIRST:
                self.move_to_end(unit, last=False)

    class ByFile(LoadScopeScheduling):
        def __init__(self, config, log):
            super().__init__(config, log)
            self.workqueue = FirstOut()  # filled in schedule(); FIRST units move to its front

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return ByFile(config, log)
