"""Capsule layers, dynamic routing and losses."""

from .arch import ARCHS, CAPSNET, CNN_BASELINE, arch_of, get_arch
from .baseline_cnn import BaselineCNN, CNNConfig
from .capsnet import CapsNet, count_parameters
from .config import CapsNetConfig
from .losses import capsule_loss, margin_loss, reconstruction_loss
from .routing import dynamic_routing
from .squash import capsule_length, squash

__all__ = [
    "ARCHS",
    "BaselineCNN",
    "CAPSNET",
    "CNNConfig",
    "CNN_BASELINE",
    "arch_of",
    "get_arch",
    "CapsNet",
    "CapsNetConfig",
    "capsule_length",
    "capsule_loss",
    "count_parameters",
    "dynamic_routing",
    "margin_loss",
    "reconstruction_loss",
    "squash",
]
