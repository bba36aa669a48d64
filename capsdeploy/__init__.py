"""capsdeploy: capsule networks from PyTorch training to production inference.

``import capsdeploy`` does not import torch: an ONNX Runtime deployment has none.
The model names below load torch when first used.
"""

from __future__ import annotations

import importlib

from .errors import CapsDeployError
from .version import __version__

_LAZY = {
    "CapsNet": ".model",
    "CapsNetConfig": ".model",
    "load_run": ".model.checkpoint",
}

__all__ = ["CapsDeployError", "CapsNet", "CapsNetConfig", "__version__", "load_run"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
