"""A short description of an ONNX graph: ops, size, inputs and outputs."""

from __future__ import annotations

import collections

import onnx
from onnx import TensorProto


def _dims(vi: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def io_specs(model: onnx.ModelProto) -> dict:
    init = {i.name for i in model.graph.initializer}
    spec = lambda vi: {  # noqa: E731
        "name": vi.name,
        "dtype": TensorProto.DataType.Name(vi.type.tensor_type.elem_type).lower(),
        "shape": _dims(vi),
    }
    return {
        "inputs": [spec(i) for i in model.graph.input if i.name not in init],
        "outputs": [spec(o) for o in model.graph.output],
    }


def summarize(model: onnx.ModelProto, size_bytes: int | None = None) -> dict:
    ops = collections.Counter(n.op_type for n in model.graph.node)
    return {
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "nodes": len(model.graph.node),
        "ops": dict(ops.most_common()),
        "parameters": int(sum(onnx.numpy_helper.to_array(i).size for i in model.graph.initializer)),
        "size_bytes": size_bytes if size_bytes is not None else model.ByteSize(),
        **io_specs(model),
    }


def format_summary(s: dict) -> str:
    io = lambda specs: ", ".join(f"{t['name']} {t['dtype']}{t['shape']}" for t in specs)  # noqa: E731
    ops = ", ".join(f"{k} {v}" for k, v in s["ops"].items())
    return (
        f"opset {s['opset']}, {s['nodes']} nodes, {s['parameters']:,} parameters, "
        f"{s['size_bytes'] / 2**20:.1f} MiB\n  inputs:  {io(s['inputs'])}\n  outputs: {io(s['outputs'])}\n"
        f"  ops:     {ops}"
    )
