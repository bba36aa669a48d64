"""checkpoint -> a Triton model repository: ``capsnet`` and ``capsnet_decoder`` (a baseline
CNN run: ``cnn_baseline`` alone).

Everything is written into a temporary directory beside the target, validated (protobuf
parse plus the semantic checks), then renamed into place: a failed export leaves nothing
half-written. TensorRT plans come from a builder the caller passes in (the CLI passes the
runtime's engine builder), so export never imports the runtime.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import onnx
from onnx import helper

from ..errors import UsageError
from ..model.checkpoint import read_run_info
from ..repository import DECODER, MAIN_MODEL, BatchingOptions, model_config, render_config
from ..repository.config import PLATFORMS, ModelDecl, TensorDecl
from ..repository.layout import find_models
from ..repository.openvino import triton_parameters
from .decoder_export import export_decoder
from .onnx_export import ExportOptions, export_onnx
from .results import RepositoryExport, RepositoryModel


class BuiltPlan(Protocol):
    """What a plan builder returns (the runtime's ``PlanBuild``), as far as a repository needs it."""

    @property
    def tensorrt_version(self) -> str: ...

    @property
    def compatibility(self) -> dict: ...


# (onnx_path, plan_path, batching) -> the build; builds a plan whose profile covers 1..max_batch_size.
PlanBuilder = Callable[[Path, Path, BatchingOptions], BuiltPlan]


def export_triton(
    checkpoint: str | Path,
    repo: str | Path,
    opts: ExportOptions,
    batching: BatchingOptions,
    platform: str = "onnx",
    build_plan: PlanBuilder | None = None,
    overwrite: bool = False,
    main_parameters: dict[str, str] | None = None,
    ov_options: dict | None = None,
    engine: str | None = None,
) -> RepositoryExport:
    """Write ``repo``; return what was written, naming every file. ``main_parameters`` go into
    the main model's config (a tuned engine and its CPU); ``ov_options`` are the OpenVINO
    settings (inference precision, hint, streams, threads) of ``platform="openvino"``;
    ``engine`` names the tuned engine the repository is for (the result carries it)."""
    batching.check()
    if platform not in PLATFORMS:
        raise UsageError(f"--platform must be one of {sorted(PLATFORMS)}")
    if platform == "trt" and build_plan is None:
        raise UsageError("--platform trt needs TensorRT to build plans")
    if opts.batch is not None:
        raise UsageError("a Triton repository needs a dynamic batch; drop --batch")
    repo = Path(repo)
    if repo.exists() and (not repo.is_dir() or any(repo.iterdir())) and not overwrite:
        raise UsageError(f"{repo} exists and is not empty; pass --overwrite to replace it")
    repo.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{repo.name}.", suffix=".tmp", dir=repo.parent))
    try:
        extra = {}
        if platform == "openvino":
            ov = dict(ov_options or {"inference_precision": "f32", "performance_hint": "LATENCY"})
            if batching.instances > 1 and ov.get("streams") is None:
                # Each instance is an infer request; on one stream they would wait for each other.
                ov.update(streams=batching.instances, performance_hint="THROUGHPUT")
            extra = triton_parameters(ov)
        report = _write(
            staging, checkpoint, opts, batching, platform, build_plan, extra, main_parameters or {}
        )
        find_models(staging)  # parse every config and check it against its model file
        _swap_into_place(staging, repo)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # The files were listed relative to the staging directory; they now live under repo.
    models = {name: replace(m, files=[str(repo / f) for f in m.files]) for name, m in report.models.items()}
    return replace(report, repository=str(repo), models=models, engine=engine)


def _write(
    staging, checkpoint, opts, batching, platform, build_plan, extra, main_extra
) -> RepositoryExport:
    arch = read_run_info(checkpoint).arch
    main_name = MAIN_MODEL[arch]
    caps_onnx = staging / main_name / "1" / "model.onnx"
    caps_onnx.parent.mkdir(parents=True)
    main = export_onnx(checkpoint, caps_onnx, replace(opts, batch=None))
    exported = [(main_name, caps_onnx)]
    if arch == "capsnet":  # the decoder is its own model, so clients can decode edited poses
        dec_onnx = staging / DECODER / "1" / "model.onnx"
        dec_onnx.parent.mkdir(parents=True)
        export_decoder(checkpoint, dec_onnx, opts.opset)
        exported.append((DECODER, dec_onnx))

    meta = onnx.load(str(caps_onnx), load_external_data=False)
    props = {p.key: p.value for p in meta.metadata_props}
    # For clients (the page among them) that send FP32 and must normalize themselves, and
    # for labels; Triton's backends ignore parameters they do not know.
    parameters = {
        "capsdeploy.normalization": props.get("capsdeploy.normalization", "{}"),
        "capsdeploy.class_names": props.get("capsdeploy.class_names", "[]"),
        "capsdeploy.precision": opts.precision,
    }
    models = {}
    for name, onnx_path in exported:
        params = {**parameters, **extra, **(main_extra if name == main_name else {})}
        decl = _declare(name, onnx_path, PLATFORMS[platform], params)
        files = [onnx_path]
        compat = None
        if platform == "trt":
            plan = onnx_path.with_name("model.plan")
            built = build_plan(onnx_path, plan, batching)
            onnx_path.unlink()
            # What a Triton container needs to load the plan, beside the plan's own sidecar.
            compat = built.compatibility
            decl.parameters.update(
                {
                    "capsdeploy.tensorrt_version": built.tensorrt_version,
                    "capsdeploy.tensorrt_version_compatible": str(
                        bool(compat.get("version_compatible"))
                    ).lower(),
                    "capsdeploy.tensorrt_runs_on": str(compat.get("runs_on", "")),
                }
            )
            files = sorted(p for p in plan.parent.iterdir() if p.name.startswith("model.plan"))
        cfg_path = staging / name / "config.pbtxt"
        cfg_path.write_text(render_config(model_config(decl, batching)))
        models[name] = RepositoryModel(
            decl.platform,
            list(decl.inputs),
            list(decl.outputs),
            [str(p.relative_to(staging)) for p in [cfg_path, *files]],
            compat,
        )
    return RepositoryExport(
        repository=str(staging),
        checkpoint=str(checkpoint),
        precision=opts.precision,
        routing_iters=main.routing_iters,
        batching=batching,
        models=models,
        warnings=main.warnings,
        tensorrt_findings=main.tensorrt_findings,
    )


def _declare(name: str, path: Path, platform: str, parameters: dict) -> ModelDecl:
    graph = onnx.load(str(path), load_external_data=False).graph

    def tensors(values):
        out = []
        for v in values:
            tt = v.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)[1:]
            out.append(TensorDecl(v.name, helper.tensor_dtype_to_np_dtype(tt.elem_type).name, dims))
        return out

    params = dict(parameters)
    if name == DECODER:
        params["capsdeploy.part"] = "decoder"
    return ModelDecl(name, platform, tensors(graph.input), tensors(graph.output), params)


def _swap_into_place(staging: Path, repo: Path) -> None:
    old = None
    if repo.exists():
        old = repo.with_name(f".{repo.name}.old-{os.getpid()}")
        os.replace(repo, old)
    os.replace(staging, repo)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

