"""The architectures a run directory can hold, by the name stored in its config.json."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .baseline_cnn import BaselineCNN, CNNConfig
from .capsnet import CapsNet
from .config import CapsNetConfig

CAPSNET, CNN_BASELINE = "capsnet", "cnn-baseline"


@dataclass(frozen=True)
class Arch:
    name: str
    config_cls: type[CapsNetConfig] | type[CNNConfig]
    module_cls: type[CapsNet] | type[BaselineCNN]
    capsules: bool  # routing, poses, a decoder, the margin loss


ARCHS = {
    CAPSNET: Arch(CAPSNET, CapsNetConfig, CapsNet, capsules=True),
    CNN_BASELINE: Arch(CNN_BASELINE, CNNConfig, BaselineCNN, capsules=False),
}


def get_arch(name: str) -> Arch:
    try:
        return ARCHS[name]
    except KeyError:
        raise UsageError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHS)}") from None


def arch_of(config) -> Arch:
    """The architecture a config object belongs to."""
    for arch in ARCHS.values():
        if isinstance(config, arch.config_cls):
            return arch
    raise TypeError(f"not a model config: {type(config).__name__}")
