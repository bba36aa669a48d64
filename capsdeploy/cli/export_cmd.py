from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from .common import batching_from, batching_options, handle_errors

if TYPE_CHECKING:  # the exporters import torch; only their types are named here
    from ..export.onnx_export import ExportOptions
    from ..export.results import OnnxExport, RepositoryExport
    from ..repository import BatchingOptions
    from ..runtime.trt.build import BuildOptions, PlanBuild


def optgroup_triton(f):
    """--format triton: the platform, Triton's scheduling knobs (written into config.pbtxt)."""
    f = click.option("--overwrite", is_flag=True, help="triton: replace an existing repository.")(f)
    f = batching_options("triton: ")(f)
    f = click.option(
        "--tuned",
        "tuned_path",
        type=click.Path(dir_okay=False, exists=True),
        help="triton: write the repository for the engine `capsdeploy tune` chose (its tune.json): "
        "platform, file precision, engine settings, max_batch_size and preferred_batch_size from the "
        "measured curve. Refused when tuned on another CPU.",
    )(f)
    f = click.option(
        "--ov-precision",
        type=click.Choice(["f32", "bf16", "default"]),
        default="f32",
        show_default=True,
        help="triton --platform openvino: OpenVINO's inference precision (default: OpenVINO's, bf16 on "
        "CPUs with AVX512-BF16 or AMX). Triton's backend can ask for bf16 (HINT_BF16) but cannot pin f32.",
    )(f)
    return click.option(
        "--platform",
        type=click.Choice(["onnx", "trt", "openvino"]),
        default="onnx",
        show_default=True,
        help="triton: onnxruntime_onnx (model.onnx), tensorrt_plan (model.plan, needs TensorRT) or "
        "backend openvino (model.onnx; use --precision int8 for OpenVINO's INT8 engine).",
    )(f)


@click.command("export")
@click.option("--checkpoint", type=click.Path(), help="Run directory from `capsdeploy train`.")
@click.option(
    "--model",
    "onnx_model",
    type=click.Path(dir_okay=False),
    help="--format trt: build from this ONNX file instead of exporting the checkpoint first.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["onnx", "trt", "triton"]), default="onnx", show_default=True
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(),
    help="Where to write model.onnx (model.plan with --format trt; a repository directory with --format triton).",
)
@click.option(
    "--routing-iters", type=click.IntRange(1), help="Unroll routing to N iterations (default: as trained)."
)
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True)
@click.option(
    "--input-dtype",
    type=click.Choice(["float32", "uint8"]),
    default="float32",
    show_default=True,
    help="uint8 bakes the cast and normalization into the graph: clients send raw pixels.",
)
@click.option(
    "--io-dtype",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="With --precision fp16: make the image input and the outputs FP16 too.",
)
@click.option("--with-decoder", is_flag=True, help="Add the `reconstruction` output.")
@click.option("--batch", type=click.IntRange(1), help="A static batch size (default: dynamic batch).")
@click.option(
    "--opset", type=int, default=18, show_default=True, help="ONNX opset (17..25; TensorRT 10 parses <= 20)."
)
@click.option("--no-simplify", is_flag=True, help="Skip onnxslim.")
@click.option(
    "--calib-samples",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="INT8: training images used for calibration.",
)
@click.option("--calib-split", help="INT8: split to calibrate on (default: the run's training split).")
@click.option(
    "--int8-target",
    type=click.Choice(["trt", "cpu"]),
    default="trt",
    show_default=True,
    help="INT8: trt = symmetric INT8 activations (zero points 0, as TensorRT requires); cpu = UINT8 "
    "activations with zero points, for ONNX Runtime's x86 kernels.",
)
@click.option(
    "--int8-format",
    type=click.Choice(["qdq", "qoperator"]),
    default="qdq",
    show_default=True,
    help="INT8: Q/DQ pairs around float ops, or QOperator ops (QLinearConv; --int8-target cpu only).",
)
@click.option(
    "--int8-ops",
    default="Conv",
    show_default=True,
    help="INT8: op types to quantize, comma-separated (Conv,PredictionMatMul also quantizes the prediction "
    "MatMul and leaves routing's MatMuls in float; Conv,MatMul quantizes routing too).",
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="INT8: where the calibration images are.")
@click.option(
    "--min-batch", type=click.IntRange(1), default=1, show_default=True, help="trt: profile minimum."
)
@click.option(
    "--opt-batch", type=click.IntRange(1), default=32, show_default=True, help="trt: profile optimum."
)
@click.option(
    "--max-batch", type=click.IntRange(1), default=256, show_default=True, help="trt: profile maximum."
)
@click.option(
    "--workspace",
    "workspace_mib",
    type=click.IntRange(16),
    default=2048,
    show_default=True,
    help="trt: workspace limit in MiB.",
)
@click.option(
    "--opt-level",
    "optimization_level",
    type=click.IntRange(0, 5),
    default=3,
    show_default=True,
    help="trt: builder optimization level.",
)
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False),
    help="trt: timing cache file (default: one per TensorRT version and GPU architecture in the cache dir).",
)
@click.option("--no-engine-cache", is_flag=True, help="trt: always rebuild.")
@click.option(
    "--version-compatible",
    is_flag=True,
    help="trt (and triton --platform trt): a version-compatible plan (BuilderFlag.VERSION_COMPATIBLE, "
    "TensorRT >= 8.6) that later TensorRT versions load with engine host code allowed; a plain plan runs "
    "only under the exact TensorRT version that built it. Neither kind changes GPU architecture.",
)
@click.option(
    "--exclude-lean-runtime",
    is_flag=True,
    help="trt, with --version-compatible: leave TensorRT's lean runtime out of the plan "
    "(BuilderFlag.EXCLUDE_LEAN_RUNTIME); the loader must supply it. Not for Triton repositories.",
)
@click.option(
    "--trt-version",
    default="10",
    show_default=True,
    help="TensorRT version the compatibility check follows (10 = 10.0, the strictest; 10.12, 11.5, ...).",
)
@click.option("--strict-trt", is_flag=True, help="Fail when the TensorRT compatibility check finds errors.")
@optgroup_triton
@click.option("--json", "json_dest", metavar="PATH", help="Write the export report as JSON; '-' for stdout.")
@handle_errors
def export_cmd(checkpoint, onnx_model, fmt, output, strict_trt, json_dest, **flags):
    """Export a trained run to ONNX (routing unrolled), or build a TensorRT plan.

    \b
    The graph takes `image` [N, C, H, W] and returns `scores` [N, classes] (capsule
    lengths), `poses` [N, classes, D] and, with --with-decoder, `reconstruction`
    (a baseline CNN run: `scores` = softmax probabilities and `logits`).
    Metadata in the file carries the run's config, normalization, routing iterations,
    precision and the weights' sha256. The graph is checked with onnx.checker and
    against TensorRT's ONNX parser support, then written atomically.

    \b
    --format trt builds a TensorRT engine (needs TensorRT and a CUDA GPU) from --model
    or from a fresh export of --checkpoint, with an optimization profile over the batch
    (--min/--opt/--max-batch), a timing cache, and an engine cache keyed by the ONNX
    sha256, TensorRT version, GPU and options; a JSON sidecar says what it was built from.

    \b
    --format triton writes a Triton model repository that `capsdeploy serve` and NVIDIA
    Triton both serve unchanged: OUTPUT/capsnet (image -> scores, poses) and
    OUTPUT/capsnet_decoder (masked poses -> reconstruction), or for a baseline CNN run
    OUTPUT/cnn_baseline (image -> scores, logits), each with a config.pbtxt
    (batching, queue policy, instances) validated against Triton's ModelConfig schema.
      capsdeploy export --format triton --checkpoint runs/mnist --output repo
    """
    from ..errors import CapsDeployError
    from ..export.results import OnnxExport
    from ..fileio import write_json_report

    result: OnnxExport | PlanBuild | RepositoryExport
    if fmt == "onnx":
        result = _export_onnx(checkpoint, output, flags)
    elif fmt == "trt":
        result = _export_plan(checkpoint, onnx_model, output, flags)
    else:
        result = _export_repository(checkpoint, output, flags)
    if json_dest:
        write_json_report(json_dest, result.to_dict())
    if json_dest != "-":
        for w in result.warnings:
            click.echo(f"warning: {w}", err=True)
        click.echo(result.describe())
    # --strict-trt judges the file of --format onnx; the other formats do not read it.
    if strict_trt and isinstance(result, OnnxExport) and result.tensorrt_errors:
        raise CapsDeployError("TensorRT compatibility check failed (--strict-trt)")


# One function per --format: the flags it reads, then the one library call that writes it.


def _export_onnx(checkpoint, output, flags: dict) -> OnnxExport:
    from ..export import export_onnx

    _refuse_tuned(flags)
    if flags["version_compatible"] or flags["exclude_lean_runtime"]:
        raise UsageError("--version-compatible and --exclude-lean-runtime apply to --format trt or triton")
    if not checkpoint:
        raise UsageError("--format onnx needs --checkpoint DIR")
    return export_onnx(checkpoint, output, _export_options(flags, for_tensorrt=False))


def _export_plan(checkpoint, onnx_model, output, flags: dict) -> PlanBuild:
    from ..runtime.trt.build import export_plan

    _refuse_tuned(flags)
    opts = _export_options(flags, for_tensorrt=True)
    return export_plan(output, _build_options(flags), onnx_model, checkpoint, opts)


def _export_repository(checkpoint, output, flags: dict) -> RepositoryExport:
    from ..export.triton_repo import export_triton

    target = _repository_target(flags)
    opts = _export_options(flags, for_tensorrt=target.platform == "trt", overrides=target.export)
    if not checkpoint:
        raise UsageError("--format triton needs --checkpoint DIR")
    builder = _plan_builder(target.platform, flags)
    return export_triton(
        checkpoint,
        output,
        opts,
        target.batching,
        target.platform,
        builder,
        flags["overwrite"],
        target.main_parameters,
        target.ov_options,
        target.engine,
    )


# Flags -> options.

# The flags named as ExportOptions' fields (and so as a tune file's "export" settings).
_EXPORT_FIELDS = (
    "routing_iters",
    "precision",
    "input_dtype",
    "with_decoder",
    "batch",
    "opset",
    "calib_samples",
    "calib_split",
    "data_dir",
    "int8_ops",
    "int8_target",
    "int8_format",
    "trt_version",
)


def _export_options(flags: dict, for_tensorrt: bool, overrides: dict | None = None) -> ExportOptions:
    """The export flags as ExportOptions; ``overrides`` (a tune file's settings) win over them."""
    from ..export import ExportOptions

    values = {**{k: flags[k] for k in _EXPORT_FIELDS}, **(overrides or {})}
    values["int8_ops"] = tuple(op.strip() for op in values["int8_ops"].split(",") if op.strip())
    if values["int8_target"] == "cpu" and for_tensorrt:
        raise UsageError("--int8-target cpu makes a file for ONNX Runtime; TensorRT needs --int8-target trt")
    return ExportOptions(
        io_dtype="float16" if flags["io_dtype"] == "fp16" else "float32",
        simplify=not flags["no_simplify"],
        **values,
    )


def _build_options(flags: dict) -> BuildOptions:
    """The trt flags as BuildOptions, checked (a repository's builder sets the batch profile itself)."""
    from ..runtime.trt.build import BuildOptions

    build = BuildOptions(
        flags["min_batch"],
        flags["opt_batch"],
        flags["max_batch"],
        flags["workspace_mib"],
        flags["optimization_level"],
        flags["timing_cache"],
        use_engine_cache=not flags["no_engine_cache"],
        version_compatible=flags["version_compatible"],
        exclude_lean_runtime=flags["exclude_lean_runtime"],
    )
    build.check()
    return build


@dataclass(frozen=True)
class _RepositoryTarget:
    """What a repository is written for: the flags', or with --tuned the tune file's choice."""

    platform: str
    batching: BatchingOptions
    ov_options: dict | None
    main_parameters: dict[str, str] | None = None
    export: dict | None = None  # ExportOptions fields that win over the flags
    engine: str | None = None


def _repository_target(flags: dict) -> _RepositoryTarget:
    batching = batching_from(flags)
    if not flags["tuned_path"]:
        ov_precision = flags["ov_precision"]
        ov_options = {
            "inference_precision": None if ov_precision == "default" else ov_precision,
            "performance_hint": "LATENCY",  # one request per instance; more instances for throughput
        }
        return _RepositoryTarget(flags["platform"], batching, ov_options)
    from ..bench.tune import repository_plan

    tuned = repository_plan(flags["tuned_path"], batching)
    return _RepositoryTarget(
        tuned.platform, tuned.batching, tuned.ov_options, tuned.parameters, tuned.export, tuned.engine
    )


def _plan_builder(platform: str, flags: dict):
    """--platform trt: the runtime's plan builder, after checking TensorRT is here; else None."""
    if platform != "trt":
        if flags["version_compatible"] or flags["exclude_lean_runtime"]:
            raise UsageError(
                "--version-compatible and --exclude-lean-runtime apply to TensorRT plans: add --platform trt"
            )
        return None
    from ..runtime.trt.build import repository_plan_builder
    from ..runtime.trt.environment import require_tensorrt

    builder = repository_plan_builder(_build_options(flags))  # refuses --exclude-lean-runtime
    require_tensorrt()  # before any export work
    return builder


def _refuse_tuned(flags: dict) -> None:
    if flags["tuned_path"]:
        raise UsageError("--tuned writes a Triton repository: add --format triton")
