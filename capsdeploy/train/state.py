"""The resume state, kept in ``RUN/resume/`` apart from the deployable files."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CapsDeployError, UsageError
from ..fileio import atomic_path

STATE = Path("resume") / "state.pt"


def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / STATE


def save_state(run_dir: str | Path, state: dict) -> None:
    with atomic_path(state_path(run_dir)) as tmp:
        torch.save(state, tmp)


def load_state(run_dir: str | Path) -> dict:
    path = state_path(run_dir)
    if not path.is_file():
        raise UsageError(
            f"{run_dir}: no resume state ({STATE}); it is not a run started by "
            "`capsdeploy train`, or it was started with another tool"
        )
    # Tensors, numbers, strings, lists and dicts only (options, model, optimizer, scheduler,
    # progress), so the safe loader suffices: a tampered state file cannot run code.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors of every kind
        raise CapsDeployError(
            f"{path}: unreadable resume state ({type(e).__name__}); the file is corrupt, or was written "
            "by another tool"
        ) from None


def run_exists(run_dir: str | Path) -> bool:
    d = Path(run_dir)
    return (d / "config.json").exists() or state_path(d).exists()
