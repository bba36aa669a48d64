"""The INT8 variant of an FP32 graph, with ONNX Runtime's static quantizer.

(FP16 needs no graph rewriting: the model runs its convolutions and matmuls in
its parameters' dtype and keeps squash, routing and lengths in FP32, so
exporting ``model.half()`` gives a clean mixed-precision graph.)

What is quantized is chosen deliberately: the convolutions hold nearly all the
FLOPs, while routing's softmax and squash decide the scores.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

# Ops quantized to INT8 by default. Quantizing routing too collapsed accuracy to
# chance in a probe (98.7% -> 10%); convolutions alone kept it. "PredictionMatMul" names the one
# MatMul with a constant weight (the predictions u_hat = W u), leaving routing's MatMuls in float.
INT8_OPS = ("Conv",)
PREDICTION_MATMUL = "PredictionMatMul"


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over prepared batches."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self._it = iter([{input_name: b} for b in batches])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # some ORT versions call it
        pass


INT8_TARGETS = ("trt", "cpu")
INT8_FORMATS = ("qdq", "qoperator")


def to_int8(
    model: onnx.ModelProto,
    calibration_batches: list[np.ndarray],
    input_name: str,
    op_types: tuple[str, ...] = INT8_OPS,
    method: str = "minmax",
    target: str = "trt",
    quant_format: str = "qdq",
) -> onnx.ModelProto:
    """Static quantization with per-channel symmetric INT8 weights.

    ``target="trt"``: symmetric INT8 activations in Q/DQ form, so every zero point is 0
    (TensorRT's explicit quantization requires it). ``target="cpu"``: asymmetric UINT8
    activations with zero points, the u8 x s8 pairing ONNX Runtime's x86 kernels are built
    for, in Q/DQ or QOperator (QLinearConv) form.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if target not in INT8_TARGETS or quant_format not in INT8_FORMATS:
        raise ValueError(f"INT8 target must be one of {INT8_TARGETS} and format one of {INT8_FORMATS}")
    if target == "trt" and quant_format != "qdq":
        raise ValueError("TensorRT reads Q/DQ graphs only")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cpu = target == "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (Path(tmp) / f for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(model, src)
        # Shape inference only: ORT's graph optimizations would fuse ops TensorRT must see.
        quant_pre_process(str(src), str(pre), skip_optimization=True)
        quantize_static(
            str(pre),
            str(dst),
            _Calibration(input_name, calibration_batches),
            quant_format=QuantFormat.QOperator if quant_format == "qoperator" else QuantFormat.QDQ,
            op_types_to_quantize=[("MatMul" if t == PREDICTION_MATMUL else t) for t in op_types],
            nodes_to_quantize=_prediction_nodes(onnx.load(pre), op_types)
            if PREDICTION_MATMUL in op_types
            else None,
            per_channel=True,
            activation_type=QuantType.QUInt8 if cpu else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            extra_options={"ActivationSymmetric": not cpu, "WeightSymmetric": True},
        )
        return onnx.load(dst)


def _prediction_nodes(model: onnx.ModelProto, op_types) -> list[str]:
    """The nodes to quantize when the prediction MatMul is asked for: those of the other op types,
    and the first MatMul whose second input is a weight (routing's MatMuls multiply activations)."""
    weights = {i.name for i in model.graph.initializer}
    names = [n.name for n in model.graph.node if n.op_type in op_types]
    pred = next((n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights), None)
    return names + ([pred] if pred else [])
