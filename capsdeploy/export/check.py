"""`capsdeploy check`: load, validate and TensorRT-check an ONNX file."""

from __future__ import annotations

from pathlib import Path

import onnx

from ..errors import CapsDeployError, UsageError
from .metadata import read_metadata
from .summary import summarize
from .trt_compat import check_tensorrt_compat


def load_onnx(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        model = onnx.load(path)
    except Exception as e:  # protobuf DecodeError and friends
        raise CapsDeployError(
            f"{path}: not a readable ONNX file ({type(e).__name__}); it is corrupt or truncated, export it again"
        ) from None
    if not model.graph.node:
        raise CapsDeployError(f"{path}: holds no graph; it is corrupt or not an ONNX model")
    return model


def check_file(path: str | Path, trt_version: str = "10") -> dict:
    model = load_onnx(path)
    try:
        onnx.checker.check_model(model, full_check=True)
        checker_error = None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        checker_error = str(e).splitlines()[0][:300]
    findings = [str(f) for f in check_tensorrt_compat(model, trt_version)]
    if checker_error:
        findings.insert(0, f"error: onnx.checker: {checker_error}")
    return {
        "model": str(path),
        "summary": summarize(model, Path(path).stat().st_size),
        "capsdeploy_metadata": read_metadata(model) is not None,
        "findings": findings,
        "compatible": not any(f.startswith("error") for f in findings),
    }
