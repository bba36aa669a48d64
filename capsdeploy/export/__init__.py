"""Export: checkpoint -> ONNX (FP32/FP16/INT8), metadata, TensorRT compatibility.

Names are imported lazily: ``capsdeploy check`` and the runtime's use of
``export.check`` must not pull in torch, which only the exporter itself needs.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ExportOptions": ".onnx_export",
    "export_onnx": ".onnx_export",
    "OnnxExport": ".results",
    "RepositoryExport": ".results",
    "ModelMetadata": ".metadata",
    "read_metadata": ".metadata",
    "check_tensorrt_compat": ".trt_compat",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
