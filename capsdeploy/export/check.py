"""`capsdeploy check`: load, validate and TensorRT-check an ONNX file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from ..errors import CapsDeployError, UsageError
from .metadata import read_metadata
from .summary import summarize
from .trt_compat import Finding, check_tensorrt_compat, has_errors


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


@dataclass
class CheckReport:
    model: str
    summary: dict
    capsdeploy_metadata: bool
    findings: list[Finding]

    @property
    def compatible(self) -> bool:
        return not has_errors(self.findings)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "summary": self.summary,
            "capsdeploy_metadata": self.capsdeploy_metadata,
            "findings": [asdict(f) for f in self.findings],
            "compatible": self.compatible,
        }


def check_file(path: str | Path, trt_version: str = "10") -> CheckReport:
    model = load_onnx(path)
    findings = []
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        findings.append(Finding("error", f"onnx.checker: {str(e).splitlines()[0][:300]}"))
    findings += check_tensorrt_compat(model, trt_version)
    return CheckReport(
        str(path), summarize(model, Path(path).stat().st_size), read_metadata(model) is not None, findings
    )
