"""The run directory contract: ``model.safetensors`` + ``config.json``.

Every stage that needs a model from a run directory calls ``load_run``; every
writer calls ``save_run``. Both files are written atomically, weights first, so
a directory with a config.json always has the weights that config describes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import CapsDeployError, UsageError
from ..fileio import atomic_path, hash_file, write_json_atomic
from ..version import __version__
from .arch import CAPSNET, arch_of, get_arch
from .baseline_cnn import BaselineCNN, CNNConfig
from .capsnet import CapsNet
from .config import CapsNetConfig

WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT_VERSION = 1


def default_normalization(channels: int = 1) -> dict:
    """Pixels scaled to [0, 1], as in the paper; mean/std per channel."""
    return {"scale": 1.0 / 255.0, "mean": [0.0] * channels, "std": [1.0] * channels}


@dataclass
class RunInfo:
    """What ``config.json`` holds, parsed; ``raw`` keeps the full document."""

    model: CapsNetConfig | CNNConfig  # by ``arch``
    class_names: list[str]
    normalization: dict
    raw: dict
    path: Path

    @property
    def arch(self) -> str:
        return self.raw.get("arch", CAPSNET)

    @property
    def dataset(self) -> dict:
        """What config.json records of the training data (name, splits, sizes, MultiMNIST)."""
        return self.raw.get("dataset", {})

    @property
    def dataset_name(self) -> str:
        return self.dataset.get("name", "mnist")

    @property
    def multimnist(self) -> bool:
        return bool(self.dataset.get("multimnist"))

    @property
    def data_dir(self) -> str | None:
        """The --data-dir the run was trained from, if any."""
        return self.raw.get("training", {}).get("data_dir")

    def test_split(self, split: str | None = None) -> tuple[str, str]:
        """(dataset, split) of the images this run is tested on: ``split`` or the run's own."""
        from ..data.datasets import get_spec

        name = self.dataset_name
        return name, split or self.dataset.get("test_split") or get_spec(name).default_test

    def train_split(self, split: str | None = None) -> tuple[str, str]:
        """(dataset, split) the run was trained on (INT8 calibration draws from it)."""
        return self.dataset_name, split or self.dataset.get("train_split") or "train"

    @property
    def weights_sha256(self) -> str:
        return self.raw.get("weights_sha256", "")


def sha256_file(path: Path) -> str:
    return hash_file(path, "sha256")


def build_config_doc(model_cfg, class_names, normalization: dict, **extra) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "capsdeploy_version": __version__,
        "arch": arch_of(model_cfg).name,
        "model": model_cfg.to_dict(),
        "input": {
            "channels": model_cfg.in_channels,
            "height": model_cfg.image_size,
            "width": model_cfg.image_size,
            "pixel_dtype": "uint8",
            "normalization": normalization,
        },
        "class_names": list(class_names),
        **extra,
    }


def save_run(run_dir: str | Path, model: torch.nn.Module, doc: dict) -> Path:
    """Write weights then config (with the weights' sha256) into ``run_dir``."""
    run_dir = Path(run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(run_dir / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "capsdeploy": __version__})
        digest = sha256_file(tmp)
    write_json_atomic(run_dir / CONFIG, {**doc, "weights_sha256": digest})
    return run_dir


def read_run_info(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory; pass the --out directory of `capsdeploy train`")
    if not cfg_path.is_file() or not (run_dir / WEIGHTS).is_file():
        raise UsageError(
            f"{run_dir}: not a capsdeploy run directory (needs {CONFIG} and {WEIGHTS}); "
            "pass the --out directory of `capsdeploy train`"
        )
    try:
        raw = json.loads(cfg_path.read_text())
        # Runs written before there was a choice of architecture are CapsNets.
        model_cfg = get_arch(raw.get("arch", CAPSNET)).config_cls.from_dict(raw["model"])
        return RunInfo(model_cfg, list(raw["class_names"]), raw["input"]["normalization"], raw, run_dir)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UsageError) as e:
        raise CapsDeployError(
            f"{cfg_path}: unreadable run config ({e}); retrain or restore the file"
        ) from None


def load_run(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    routing_iters: int | None = None,
) -> tuple[CapsNet | BaselineCNN, RunInfo]:
    """Rebuild the module from config.json and load its weights, in eval mode.

    ``routing_iters`` overrides the trained count (routing has no weights of its
    own, so any count loads).
    """
    info = read_run_info(run_dir)
    cfg = info.model
    arch = get_arch(info.arch)
    if routing_iters is not None and routing_iters != cfg.routing_iters:
        if not arch.capsules:
            raise UsageError(f"{run_dir} is a {info.arch}: it has no routing iterations to change")
        cfg = CapsNetConfig.from_dict({**cfg.to_dict(), "routing_iters": routing_iters})
    # cfg is of arch.config_cls (read_run_info parsed it by the same arch): a pairing mypy cannot see.
    model = arch.module_cls(cfg)  # type: ignore[arg-type]
    try:
        state = load_file(str(info.path / WEIGHTS))
    except Exception as e:  # safetensors raises its own error types
        raise CapsDeployError(f"{info.path / WEIGHTS}: unreadable weights ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise CapsDeployError(
            f"{info.path}: weights do not fit the model described by {CONFIG} "
            f"({' '.join(first)}); the two files come from different runs"
        ) from None
    return model.to(device).eval(), info
