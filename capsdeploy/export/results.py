"""What the exporters return: typed results, ``to_dict()`` for the ``--json`` report and
``describe()`` for the CLI's summary.

Torch-free, like the rest of what the CLI imports to render: the exporters import torch,
their results do not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..repository import BatchingOptions
from ..repository.config import TensorDecl
from .summary import format_summary
from .trt_compat import Finding, has_errors


def _findings(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]


@dataclass(frozen=True)
class OnnxExport:
    """One ONNX file written by ``export_onnx``."""

    output: str
    checkpoint: str
    summary: dict  # summarize(): opset, nodes, ops, parameters, size_bytes, inputs, outputs
    precision: str
    routing_iters: int  # 0 for a baseline CNN (no routing)
    warnings: list[str] = field(default_factory=list)
    tensorrt_findings: list[Finding] = field(default_factory=list)
    # False for a CPU-targeted INT8 file: it is for ONNX Runtime only, TensorRT's rules do not
    # apply. Not in the JSON report, whose keys predate it (an empty findings list there).
    tensorrt_checked: bool = True

    @property
    def tensorrt_errors(self) -> bool:
        return has_errors(self.tensorrt_findings)

    def to_dict(self) -> dict:
        return {
            "output": self.output,
            "checkpoint": self.checkpoint,
            "summary": self.summary,
            "precision": self.precision,
            "routing_iters": self.routing_iters,
            "warnings": list(self.warnings),
            "tensorrt_findings": _findings(self.tensorrt_findings),
        }

    def describe(self) -> str:
        routing = f"{self.routing_iters} routing iterations" if self.routing_iters else "no routing"
        lines = [f"wrote {self.output} ({self.precision}, {routing})", format_summary(self.summary)]
        if not self.tensorrt_checked:
            lines.append("TensorRT check: not applicable (CPU-targeted INT8, for ONNX Runtime)")
        else:
            n = len(self.tensorrt_findings)
            lines.append("TensorRT check: " + ("ok" if not n else f"{n} finding(s)"))
        lines += [f"  {f}" for f in self.tensorrt_findings]
        return "\n".join(lines)


@dataclass(frozen=True)
class RepositoryModel:
    """One model of a repository: its platform, tensors (dims without the batch axis) and files."""

    platform: str
    inputs: list[TensorDecl]
    outputs: list[TensorDecl]
    files: list[str]  # config.pbtxt first, then the model file(s)
    tensorrt_compatibility: dict | None = None  # a plan's: the sidecar's "compatibility"

    def to_dict(self) -> dict:
        def tensors(decls):
            return {t.name: [t.dtype, list(t.dims)] for t in decls}

        doc = {
            "platform": self.platform,
            "inputs": tensors(self.inputs),
            "outputs": tensors(self.outputs),
            "files": list(self.files),
        }
        if self.tensorrt_compatibility is not None:
            doc["tensorrt_compatibility"] = self.tensorrt_compatibility
        return doc

    def describe(self, name: str) -> str:
        def tensors(decls):
            return ", ".join(f"{t.name} {t.dtype}{list(t.dims)}" for t in decls)

        return f"  {name} ({self.platform}): {tensors(self.inputs)} -> {tensors(self.outputs)}"


@dataclass(frozen=True)
class RepositoryExport:
    """A Triton model repository written by ``export_triton``."""

    repository: str
    checkpoint: str
    precision: str
    routing_iters: int
    batching: BatchingOptions
    models: dict[str, RepositoryModel]
    warnings: list[str] = field(default_factory=list)
    tensorrt_findings: list[Finding] = field(default_factory=list)
    engine: str | None = None  # the tuned engine it was written for (`export --tuned`)

    def to_dict(self) -> dict:
        doc = {
            "checkpoint": self.checkpoint,
            "precision": self.precision,
            "routing_iters": self.routing_iters,
            "batching": dict(vars(self.batching)),
            "models": {name: m.to_dict() for name, m in self.models.items()},
            "warnings": list(self.warnings),
            "tensorrt_findings": _findings(self.tensorrt_findings),
            "repository": self.repository,
        }
        if self.engine:
            doc["engine"] = self.engine
        return doc

    def describe(self) -> str:
        head = f"wrote Triton model repository {self.repository} ({self.precision})"
        if self.engine:
            head += f" for the tuned engine {self.engine}"
        b = self.batching
        return "\n".join(
            [
                head,
                *(m.describe(name) for name, m in self.models.items()),
                f"  batching: max {b.max_batch_size}, queue delay {b.max_queue_delay_us} us, "
                f"preferred {list(b.preferred_batch_sizes) or 'none'}, {b.instances} instance(s)",
                f"serve it: capsdeploy serve {self.repository}",
            ]
        )
