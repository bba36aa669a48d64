"""checkpoint -> model.onnx: routing unrolled, preprocessing in the graph, checked.

The pipeline: torch.onnx.export (dynamo) -> onnxslim -> precision variant ->
metadata -> onnx.checker (full) + strict shape inference -> TensorRT check ->
atomic write.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from ..contract import INPUT_NAME, ModelMetadata
from ..errors import CapsDeployError, UsageError
from ..fileio import atomic_path
from ..model.checkpoint import load_run
from ..version import __version__
from .deploy_module import DeployModule
from .metadata import write_metadata
from .precision import INT8_FORMATS, INT8_OPS, INT8_TARGETS, to_int8
from .results import OnnxExport
from .summary import summarize
from .trt_compat import TrtVersion, check_tensorrt_compat

DEFAULT_OPSET = 18  # inside TensorRT 10's parser range (9..20); ONNX Runtime runs it
MIN_OPSET = 17
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class ExportOptions:
    routing_iters: int | None = None  # None: the checkpoint's
    input_dtype: str = "float32"  # or "uint8": cast and scaling baked into the graph
    with_decoder: bool = False
    batch: int | None = None  # None: dynamic batch
    opset: int = DEFAULT_OPSET
    precision: str = "fp32"
    io_dtype: str = "float32"  # fp16 only: "float16" makes image/outputs FP16 too
    simplify: bool = True
    calib_samples: int = 512
    calib_dataset: str | None = None  # default: the run's training set
    calib_split: str | None = None
    data_dir: str | None = None
    int8_ops: tuple[str, ...] = INT8_OPS
    int8_target: str = "trt"  # or "cpu": UINT8 activations with zero points (precision.py)
    int8_format: str = "qdq"  # or "qoperator" (cpu target only)
    trt_version: str = "10"


def export_onnx(checkpoint: str | Path, output: str | Path, opts: ExportOptions) -> OnnxExport:
    """Export and write ``output``; return what was written (summary, warnings, TRT findings)."""
    _validate_options(opts)
    model, info = load_run(checkpoint, routing_iters=opts.routing_iters)
    if opts.with_decoder and "reconstruction" not in model.output_names:
        raise UsageError(f"{checkpoint} is a {info.arch}: it has no decoder to export")
    iters = model.config.routing_iters
    warnings_out = []
    if iters != info.model.routing_iters:
        warnings_out.append(
            f"exporting with {iters} routing iterations; the model was trained with "
            f"{info.model.routing_iters} (validate compares against PyTorch at {iters})"
        )
    if opts.precision == "fp16":
        model = model.half()
    deploy = DeployModule(
        model,
        info.normalization,
        uint8_input=opts.input_dtype == "uint8",
        with_decoder=opts.with_decoder,
        fp16_io=opts.io_dtype == "float16",
    ).eval()
    proto = _torch_export(deploy, info.model, model.output_names, opts)
    if opts.simplify:
        proto = _simplify(proto)
    if opts.precision == "int8":
        batches = _calibration_batches(info, opts)
        proto = to_int8(
            proto, batches, INPUT_NAME, opts.int8_ops, target=opts.int8_target, quant_format=opts.int8_format
        )

    input_dtype = "float16" if opts.precision == "fp16" and opts.io_dtype == "float16" else opts.input_dtype
    meta = ModelMetadata.for_run(info, iters, opts.precision, input_dtype, opts.with_decoder)
    write_metadata(proto, meta)
    proto.producer_name, proto.producer_version = "capsdeploy", __version__
    _check(proto)
    # A CPU-targeted INT8 file is for ONNX Runtime only (UINT8 activations with zero points,
    # QOperator ops): TensorRT's rules do not apply to it, and it is never built into a plan.
    cpu_int8 = opts.precision == "int8" and opts.int8_target == "cpu"
    findings = [] if cpu_int8 else check_tensorrt_compat(proto, opts.trt_version)

    output = Path(output)
    with atomic_path(output) as tmp:
        onnx.save(proto, tmp)
        size = tmp.stat().st_size
    return OnnxExport(
        output=str(output),
        checkpoint=str(checkpoint),
        summary=summarize(proto, size),
        precision=opts.precision,
        routing_iters=iters,
        warnings=warnings_out,
        tensorrt_findings=findings,
        tensorrt_checked=not cpu_int8,
    )


def _validate_options(opts: ExportOptions) -> None:
    if opts.precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {PRECISIONS}")
    if opts.int8_target not in INT8_TARGETS or opts.int8_format not in INT8_FORMATS:
        raise UsageError(f"--int8-target must be one of {INT8_TARGETS}, --int8-format one of {INT8_FORMATS}")
    if opts.int8_target == "trt" and opts.int8_format != "qdq":
        raise UsageError("--int8-format qoperator is for --int8-target cpu; TensorRT reads Q/DQ graphs only")
    if opts.input_dtype not in ("float32", "uint8"):
        raise UsageError("--input-dtype must be float32 or uint8")
    if opts.io_dtype == "float16" and (opts.precision != "fp16" or opts.input_dtype == "uint8"):
        raise UsageError("--io-dtype fp16 needs --precision fp16 and float32 input")
    if opts.opset < MIN_OPSET or opts.opset > 25:
        raise UsageError(f"--opset {opts.opset}: choose {MIN_OPSET}..25 (TensorRT 10 parses up to 20)")
    if opts.batch is not None and opts.batch < 1:
        raise UsageError("--batch must be >= 1")
    TrtVersion.parse(opts.trt_version)  # a bad --trt-version fails before any export work


def _torch_export(deploy: DeployModule, cfg, output_names, opts: ExportOptions) -> onnx.ModelProto:
    n = opts.batch or 2  # dynamo specializes a batch of 1; an example of 2 keeps it symbolic
    shape = (n, cfg.in_channels, cfg.image_size, cfg.image_size)
    if opts.input_dtype == "uint8":
        example = torch.randint(0, 256, shape, dtype=torch.uint8)
    else:
        example = torch.rand(shape, dtype=torch.float16 if opts.io_dtype == "float16" else torch.float32)
    names = list(output_names[:3] if opts.with_decoder else output_names[:2])
    dynamic = None if opts.batch else {"image": {0: torch.export.Dim("batch", min=1, max=65536)}}
    return quiet_export(deploy, example, [INPUT_NAME], names, dynamic, opts.opset)


def quiet_export(module, example, input_names, output_names, dynamic, opset: int) -> onnx.ModelProto:
    """torch.onnx.export (dynamo) of ``module`` on one example input, without its chatter."""
    # The exporter narrates to stdout, warns and logs freely; keep our output clean.
    torch_log = logging.getLogger("torch.onnx")
    level = torch_log.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch_log.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic,
                opset_version=opset,
                # The exporter's optimizer (onnxscript 0.7) drops `x + 1e-8` as if it
                # added zero, removing squash's epsilon and breaking parity for short
                # capsules; onnxslim simplifies without that rewrite.
                optimize=False,
                external_data=False,
                verbose=False,
            )
        except Exception as e:  # the exporter raises many types
            raise CapsDeployError(f"torch.onnx.export failed: {type(e).__name__}: {str(e)[:500]}") from None
        finally:
            torch_log.setLevel(level)
    assert program is not None  # only the legacy exporter (dynamo=False) returns None
    return program.model_proto


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    with contextlib.redirect_stdout(io.StringIO()):
        slim = onnxslim.slim(proto)
    return slim if slim is not None else proto


def _check(proto: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise CapsDeployError(f"exported graph failed onnx.checker: {str(e)[:500]}") from None


def _calibration_batches(info, opts: ExportOptions, batch_size: int = 32) -> list[np.ndarray]:
    from ..data import load_split
    from ..data.preprocess import prepare_batch

    run_dataset, split = info.train_split(opts.calib_split)
    dataset = opts.calib_dataset or run_dataset
    data_dir = opts.data_dir or info.data_dir
    data = load_split(dataset, split, data_dir, download=False, limit=opts.calib_samples)
    input_dtype = "uint8" if opts.input_dtype == "uint8" else "float32"
    from ..data.canvas import on_canvas

    images = on_canvas(data.images, info.model.image_size)  # --pad / --multimnist runs: their canvas
    return [
        prepare_batch(images[i : i + batch_size], input_dtype, info.normalization)
        for i in range(0, len(images), batch_size)
    ]
