"""Will TensorRT's ONNX parser take this graph? Checked without TensorRT or a GPU.

The rules follow the ONNX-TensorRT parser's documented support matrix
(docs/operators.md of onnx/onnx-tensorrt) for TensorRT 10 and 11: opset range,
supported ops, inputs that must be build-time constants, data types, and
dynamic dimensions that capsdeploy's optimization profiles (batch only) cover.
The op list is deliberately conservative: an op missing from it is reported,
so a new construct is looked at before an engine build fails on a GPU box.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

OPSET_RANGE = {"10": (9, 20), "11": (9, 25)}

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

# (op, input index) pairs whose input must be a build-time constant.
CONSTANT_INPUTS = {
    ("Slice", 3): "axes",
    ("Squeeze", 1): "axes",
    ("Unsqueeze", 1): "axes",
    ("TopK", 1): "K",
    ("CumSum", 1): "axis",
    ("OneHot", 1): "depth",
    ("QuantizeLinear", 1): "y_scale",
    ("QuantizeLinear", 2): "y_zero_point",
    ("DequantizeLinear", 1): "x_scale",
    ("DequantizeLinear", 2): "x_zero_point",
}
REDUCE_OPS = {op for op in SUPPORTED_OPS if op.startswith("Reduce")}


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


def check_tensorrt_compat(model: onnx.ModelProto, trt_major: str = "10") -> list[Finding]:
    findings: list[Finding] = []
    lo, hi = OPSET_RANGE[trt_major]
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if not lo <= imp.version <= hi:
                findings.append(
                    Finding("error", f"opset {imp.version} outside TensorRT {trt_major}'s {lo}..{hi}")
                )
        elif not any(n.domain == imp.domain for n in model.graph.node):
            continue
        else:
            findings.append(Finding("error", f"custom op domain {imp.domain!r} needs a TensorRT plugin"))

    constants = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            constants[n.output[0]] = n
    for node in model.graph.node:
        findings += _check_node(node, constants)
    findings += _check_dtypes(model)
    findings += _check_dynamic_inputs(model, constants)
    return findings


def _check_node(node: onnx.NodeProto, constants: dict) -> list[Finding]:
    out = []
    err = lambda msg: out.append(Finding("error", msg, node.name, node.op_type))  # noqa: E731
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return out  # reported once per domain
    if op in KNOWN_UNSUPPORTED:
        err(f"not supported by TensorRT: {KNOWN_UNSUPPORTED[op]}")
    elif op not in SUPPORTED_OPS:
        err("not in the TensorRT ONNX parser's supported operators")
    if op == "Einsum":
        eq = next((a.s.decode() for a in node.attribute if a.name == "equation"), "")
        operands = eq.split("->")[0].split(",")
        if len(node.input) > 2:
            err(f"Einsum with {len(node.input)} operands; TensorRT takes at most 2")
        if "..." in eq:
            err("Einsum with an ellipsis is not supported")
        if any(len(set(t.strip())) != len(t.strip()) for t in operands):
            err("Einsum with a repeated index in one operand (diagonal) is not supported")
    if op in REDUCE_OPS and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
        err(f"{op} axes come from a computed tensor; TensorRT needs them as an initializer")
    for i, name in enumerate(node.input):
        what = CONSTANT_INPUTS.get((op, i))
        if what and name and name not in constants:
            err(f"input {what!r} must be an initializer")
    if op in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
        zp = constants.get(node.input[2])
        if isinstance(zp, onnx.TensorProto) and onnx.numpy_helper.to_array(zp).any():
            err("non-zero zero point; TensorRT needs symmetric quantization")
    if op == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if to == TensorProto.DOUBLE:
            err("Cast to float64; TensorRT has no float64")
    return out


def _check_dtypes(model: onnx.ModelProto) -> list[Finding]:
    out = []
    g = model.graph
    typed = [*g.input, *g.output, *g.value_info]
    for vi in typed:
        if vi.type.tensor_type.elem_type == TensorProto.DOUBLE:
            out.append(Finding("error", f"tensor {vi.name!r} is float64; TensorRT has no float64"))
    for init in g.initializer:
        if init.data_type == TensorProto.DOUBLE:
            out.append(Finding("error", f"initializer {init.name!r} is float64"))
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
