"""Will TensorRT's ONNX parser take this graph? Checked without TensorRT or a GPU.

The rules follow the ONNX-TensorRT parser's documented support matrix
(docs/operators.md of onnx/onnx-tensorrt, read at 10.0, 10.1, 10.15) and the
TensorRT API docs, per TensorRT version: opset range, supported ops, inputs that
must be build-time constants, data types, and dynamic dimensions that
capsdeploy's optimization profiles (batch only) cover. Nodes inside If/Loop/Scan
bodies and model-local functions are checked like top-level nodes. The op list is
deliberately conservative: an op missing from it is reported, so a new construct
is looked at before an engine build fails on a GPU box.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from ..errors import UsageError


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        """ "10" (read as 10.0, the most conservative), "10.12", "11.5" or a full "10.7.0.23"."""
        m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.\d+)*", str(text).strip())
        if not m or int(m.group(1)) not in (10, 11):
            raise UsageError(
                f"--trt-version {text!r}: give a TensorRT 10 or 11 version, e.g. 10, 10.12 or 11.5"
            )
        return cls(int(m.group(1)), int(m.group(2) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def opset_range(v: TrtVersion) -> tuple[int, int]:
    # operators.md: 10.0 parses opsets 9..20; 10.15 up to 24; opset 25 only from 11.5.
    # Versions between the documented points get the older (smaller) range.
    if v >= TrtVersion(11, 5):
        return 9, 25
    if v >= TrtVersion(10, 15):
        return 9, 24
    return 9, 20


# IEinsumLayer's docs list two operands at most, no ellipsis and no diagonal (a repeated
# index in one operand) up to 10.11; the limits are gone from the 10.12 docs.
EINSUM_LIMITS_UNTIL = TrtVersion(10, 12)
# operators.md 10.0/10.1: Slice `axes` must be an initializer; the 10.15 matrix drops that.
SLICE_AXES_CONSTANT_UNTIL = TrtVersion(10, 15)
TOPK_MAX_K = 3840  # operators.md: K < 3840, sorted = 1 (K itself may be computed)

SUPPORTED_OPS = frozenset(
    [
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "CastLike",
        "Ceil",
        "Celu",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gelu",
        "Gemm",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "GridSample",
        "GroupNormalization",
        "GRU",
        "HardSigmoid",
        "HardSwish",
        "Hardmax",
        "Identity",
        "If",
        "InstanceNormalization",
        "IsInf",
        "IsNaN",
        "LayerNormalization",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "Loop",
        "LpNormalization",
        "LpPool",
        "LRN",
        "LSTM",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "Min",
        "Mish",
        "Mod",
        "Mul",
        "Neg",
        "NonZero",
        "Not",
        "OneHot",
        "Or",
        "Pad",
        "Pow",
        "PRelu",
        "QuantizeLinear",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "Reciprocal",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "ReverseSequence",
        "RNN",
        "RoiAlign",
        "Round",
        "Scan",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Shrink",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Trilu",
        "Unsqueeze",
        "Upsample",
        "Where",
        "Xor",
    ]
)

KNOWN_UNSUPPORTED = {
    "DynamicQuantizeLinear": "dynamic quantization; export static Q/DQ (--precision int8) instead",
    "QLinearConv": "QOperator format; quantize with QuantFormat.QDQ",
    "QLinearMatMul": "QOperator format; quantize with QuantFormat.QDQ",
    "ConvInteger": "integer convolution; quantize with QuantFormat.QDQ",
    "MatMulInteger": "integer matmul; quantize with QuantFormat.QDQ",
}

# (op, input index) pairs whose input must be a build-time constant in every version.
# Squeeze/Unsqueeze axes must resolve to constants; Q/DQ scales need not (operators.md);
# TopK's K need not (only its value is limited).
CONSTANT_INPUTS = {
    ("Squeeze", 1): "axes",
    ("Unsqueeze", 1): "axes",
    ("CumSum", 1): "axis",
    ("OneHot", 1): "depth",
}
REDUCE_OPS = {op for op in SUPPORTED_OPS if op.startswith("Reduce")}
STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    message: str
    node: str = ""
    op: str = ""

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    def __str__(self) -> str:
        where = f"{self.node} ({self.op}): " if self.node or self.op else ""
        return f"{self.level}: {where}{self.message}"


def has_errors(findings: list[Finding]) -> bool:
    return any(f.is_error for f in findings)


def check_tensorrt_compat(model: onnx.ModelProto, trt_version: str | TrtVersion = "10") -> list[Finding]:
    v = trt_version if isinstance(trt_version, TrtVersion) else TrtVersion.parse(trt_version)
    findings: list[Finding] = []
    lo, hi = opset_range(v)
    local = {(f.domain, f.name) for f in model.functions}
    for imp in model.opset_import:
        if imp.domain in STANDARD_DOMAINS:
            if not lo <= imp.version <= hi:
                findings.append(Finding("error", f"opset {imp.version} outside TensorRT {v}'s {lo}..{hi}"))
            continue
        users = [n for n in _all_nodes(model) if n.domain == imp.domain]
        # Calls of model-local functions are inlined by the parser; only other ops need a plugin.
        if any((n.domain, n.op_type) not in local for n in users):
            findings.append(Finding("error", f"custom op domain {imp.domain!r} needs a TensorRT plugin"))

    constants = _constants(model)
    for node in _all_nodes(model):
        if (node.domain, node.op_type) in local:
            continue
        findings += _check_node(node, constants, v)
    findings += _check_dtypes(model)
    findings += _check_dynamic_inputs(model, constants)
    return findings


def _all_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: the graph's, those of If/Loop/Scan bodies (recursively), and of local functions."""

    def walk(nodes):
        for n in nodes:
            yield n
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from walk(a.g.node)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        yield from walk(g.node)

    yield from walk(model.graph.node)
    for f in model.functions:
        yield from walk(f.node)


def _constants(model: onnx.ModelProto) -> dict:
    constants: dict[str, TensorProto | onnx.NodeProto] = {i.name: i for i in model.graph.initializer}
    for n in _all_nodes(model):
        if n.op_type == "Constant" and n.domain in STANDARD_DOMAINS:
            constants[n.output[0]] = n
    return constants


def _value(const) -> np.ndarray | None:
    """The array of an initializer or a Constant node's `value`, else None."""
    import onnx.numpy_helper as nh

    if isinstance(const, onnx.TensorProto):
        return nh.to_array(const)
    for a in getattr(const, "attribute", []):
        if a.name == "value":
            return nh.to_array(a.t)
    return None


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_node(node: onnx.NodeProto, constants: dict, v: TrtVersion) -> list[Finding]:
    out = []
    err = lambda msg: out.append(Finding("error", msg, node.name, node.op_type))  # noqa: E731
    warn = lambda msg: out.append(Finding("warning", msg, node.name, node.op_type))  # noqa: E731
    op = node.op_type
    if node.domain not in STANDARD_DOMAINS:
        return out  # reported once per domain
    if op in KNOWN_UNSUPPORTED:
        err(f"not supported by TensorRT: {KNOWN_UNSUPPORTED[op]}")
    elif op not in SUPPORTED_OPS:
        err("not in the TensorRT ONNX parser's supported operators")
    if op == "Einsum" and v < EINSUM_LIMITS_UNTIL:
        eq = _text(_attr(node, "equation", ""))
        operands = eq.split("->")[0].split(",")
        if len(node.input) > 2:
            err(f"Einsum with {len(node.input)} operands; TensorRT {v} takes at most 2 (10.12 lifts it)")
        if "..." in eq:
            err(f"Einsum with an ellipsis is not supported before TensorRT 10.12 ({v})")
        if any(len(set(t.strip())) != len(t.strip()) for t in operands if "..." not in t):
            err(f"Einsum with a repeated index in one operand (diagonal) is not supported before 10.12 ({v})")
    if op in REDUCE_OPS and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
        err(f"{op} axes come from a computed tensor; TensorRT needs them as an initializer")
    for i, name in enumerate(node.input):
        what = CONSTANT_INPUTS.get((op, i))
        if what and name and name not in constants:
            err(f"input {what!r} must be an initializer or constant")
    slice_axes = node.input[3] if op == "Slice" and len(node.input) > 3 else ""
    if slice_axes and v < SLICE_AXES_CONSTANT_UNTIL and slice_axes not in constants:
        err(f"input 'axes' must be an initializer before TensorRT 10.15 ({v})")
    if op == "TopK":
        if _attr(node, "sorted", 1) == 0:
            err("TopK with sorted=0 is not supported")
        k = _value(constants[node.input[1]]) if len(node.input) > 1 and node.input[1] in constants else None
        if k is not None and int(k.reshape(-1)[0]) >= TOPK_MAX_K:
            err(f"TopK with K={int(k.reshape(-1)[0])}; TensorRT needs K < {TOPK_MAX_K}")
    if op in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
        zp = constants.get(node.input[2])
        arr = _value(zp) if zp is not None else None
        if arr is None:
            warn("zero point is computed; TensorRT needs it to be 0 and this cannot be checked")
        elif arr.any():
            err("non-zero zero point; TensorRT needs symmetric quantization")
    if op == "Cast" and _attr(node, "to") == TensorProto.DOUBLE:
        warn("Cast to float64: the parser computes it in float32")
    if op == "Cast" and _attr(node, "to") == TensorProto.UINT8:
        err("Cast to uint8 inside the network; TensorRT takes uint8 only as a network input or output")
    if op == "Resize":
        if _attr(node, "antialias", 0):
            err("Resize with antialias is not supported")
        if _text(_attr(node, "mode", "nearest")) == "cubic":
            warn("Resize in cubic mode is supported for 2D resizes only")
    if op == "ScatterND" and _text(_attr(node, "reduction", "none")) != "none":
        err("ScatterND with a reduction is not supported")
    if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
        err("MaxPool's Indices output is not supported")
    return out


def _check_dtypes(model: onnx.ModelProto) -> list[Finding]:
    out = []
    g = model.graph
    io = {vi.name for vi in (*g.input, *g.output)}
    for vi in (*g.input, *g.output, *g.value_info):
        t = vi.type.tensor_type.elem_type
        if t == TensorProto.DOUBLE:
            out.append(
                Finding("warning", f"tensor {vi.name!r} is float64; the parser computes it in float32")
            )
        if t == TensorProto.UINT8 and vi.name not in io:
            out.append(
                Finding(
                    "error", f"tensor {vi.name!r} is uint8 inside the network; only network IO may be uint8"
                )
            )
    for init in g.initializer:
        if init.data_type == TensorProto.DOUBLE:
            out.append(
                Finding("warning", f"initializer {init.name!r} is float64; the parser casts it to float32")
            )
    return out


def _check_dynamic_inputs(model: onnx.ModelProto, constants: dict) -> list[Finding]:
    out = []
    for inp in model.graph.input:
        if inp.name in constants:
            continue
        dims = inp.type.tensor_type.shape.dim
        if not dims:
            out.append(Finding("error", f"input {inp.name!r} has no shape; a profile cannot cover it"))
        for axis, d in enumerate(dims):
            if axis > 0 and not d.HasField("dim_value"):
                out.append(
                    Finding(
                        "error",
                        f"input {inp.name!r} axis {axis} is dynamic; capsdeploy's profiles cover only "
                        "the batch axis (export with a fixed image size)",
                    )
                )
    return out
