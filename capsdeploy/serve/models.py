"""What the server serves: each model's config, backend, batcher and statistics.

A repository is loaded as Triton loads it: every model directory, its latest version,
batched and scheduled by its own config.pbtxt (instances = batcher workers, each on a
``backend.clone()``). ``--model PATH`` becomes a one-model (or, for a run directory on
torch, model-plus-decoder) repository with the same knobs. Serving reads repositories and
model files only: a run directory for another engine is exported first, by the CLI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..repository import (
    CAPSNET,
    DECODER,
    MAIN_MODEL,
    BatchingOptions,
    config_to_json,
    find_models,
    model_config,
    normalize_config,
)
from ..repository.config import ModelDecl, TensorDecl
from ..repository.dtypes import NP_TO_V2, np_type_of_config
from ..runtime.backend import Backend
from ..runtime.batcher import DynamicBatcher
from ..runtime.engines import engine_spec
from .protocol import InputSpec
from .stats import ModelStats

log = logging.getLogger("capsdeploy.serve")
REFUSE_NON_FINITE = "capsdeploy.refuse_non_finite"  # model parameter: "true" refuses NaN/inf inputs
UNBOUNDED_QUEUE = 1 << 30


@dataclass
class ServedModel:
    name: str
    version: str
    config: Any  # tritonclient's ModelConfig protobuf (untyped)
    backend: Backend
    batcher: DynamicBatcher
    stats: ModelStats
    inputs: list[InputSpec]
    output_names: list[str]
    default_timeout_s: float | None  # queue timeout; None: none (Triton's default_timeout 0)
    allow_timeout_override: bool
    # The ModelConfig as Triton returns it from /config and ModelConfig (normalized), computed
    # once at load; config_json is its JSON for HTTP.
    normalized_config: object = None
    config_json: dict = field(default_factory=dict)

    @property
    def platform(self) -> str:
        return self.config.platform or self.config.backend

    @property
    def max_rows(self) -> int:
        return self.config.max_batch_size or 1

    @property
    def parameters(self) -> dict[str, str]:
        return {k: v.string_value for k, v in self.config.parameters.items()}

    @property
    def refuse_non_finite(self) -> bool:
        """Triton hands NaN and infinities to the model; a config may opt into refusing them."""
        return self.parameters.get(REFUSE_NON_FINITE, "").strip().lower() in ("1", "true", "yes")

    def pending(self) -> int:
        return self.batcher.pending()

    def metadata(self) -> dict:
        """V2 model metadata: the batch dimension as -1, as Triton reports it."""
        batch = [-1] if self.config.max_batch_size > 0 else []

        def tensors(decls):
            return [
                {
                    "name": t.name,
                    "datatype": NP_TO_V2[np_type_of_config(_type_name(t.data_type))],
                    "shape": [*batch, *t.dims],
                }
                for t in decls
            ]

        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": tensors(self.config.input),
            "outputs": tensors(self.config.output),
        }

    def timeout_s(self, request_timeout_us: int | None) -> float | None:
        """How long the request may wait in the queue (Triton's timeouts cover only that), by
        Triton's rule (core's PolicyQueue::Enqueue): the queue policy's default; a request's own
        timeout replaces it only when overrides are allowed and it is shorter. No default (0, or
        no dynamic batching, whose default scheduler has no queue policy): no timeout at all."""
        default = self.default_timeout_s
        if default is None:
            return None
        if self.allow_timeout_override and request_timeout_us and request_timeout_us < default * 1e6:
            return request_timeout_us / 1e6
        return default

    def close(self, drain_s: float) -> None:
        self.batcher.close(drain_s)
        if self.batcher.stopped:
            self.backend.close()
        else:  # a worker is still inside the engine: releasing it now would be unsafe
            log.warning("%s: a batch is still running after close(); its backend is left open", self.name)


def _type_name(value: int) -> str:
    from ..repository.config import pb2

    return pb2().DataType.Name(value)


def serve_model(name: str, version: str, config, backend: Backend, on_batch=None) -> ServedModel:
    """Wrap ``backend`` in a batcher configured by ``config`` after checking they agree."""
    _check_agreement(name, config, backend)
    stats = ModelStats(name, version)
    dyn = config.dynamic_batching if config.HasField("dynamic_batching") else None
    policy = dyn.default_queue_policy if dyn is not None else None
    timeout_us = policy.default_timeout_microseconds if policy is not None else 0
    default_timeout = timeout_us / 1e6 if timeout_us else None
    workers = sum(g.count for g in config.instance_group) or 1

    def record(batch):
        stats.record_batch(batch)
        if on_batch is not None:
            on_batch(name, batch)

    batcher = DynamicBatcher(
        backend,
        # Without dynamic_batching Triton runs each request on its own; so do we.
        max_batch_size=config.max_batch_size if dyn is not None else 1,
        max_queue_delay_us=dyn.max_queue_delay_microseconds if dyn is not None else 0,
        preferred_batch_sizes=list(dyn.preferred_batch_size) if dyn is not None else (),
        max_queue_size=(policy.max_queue_size or UNBOUNDED_QUEUE) if policy is not None else UNBOUNDED_QUEUE,
        workers=workers,
        on_batch=record,
    )
    inputs = [
        InputSpec(
            t.name, np_type_of_config(_type_name(t.data_type)), tuple(t.dims), config.max_batch_size > 0
        )
        for t in config.input
    ]
    normalized = normalize_config(config, _runs_on_gpu(backend))
    return ServedModel(
        name=name,
        version=version,
        config=config,
        backend=backend,
        batcher=batcher,
        stats=stats,
        inputs=inputs,
        output_names=[t.name for t in config.output],
        default_timeout_s=default_timeout,
        allow_timeout_override=policy.allow_timeout_override if policy is not None else False,
        normalized_config=normalized,
        config_json=config_to_json(normalized),
    )


def _runs_on_gpu(backend: Backend) -> bool:
    """Whether the engine's instances run on a GPU (Triton resolves KIND_AUTO by this)."""
    if backend.name == "trt":
        return True
    providers = getattr(backend, "providers", None) or []
    device = getattr(backend, "device", None)
    return any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in providers) or (
        getattr(device, "type", None) == "cuda"
    )


def _check_agreement(name: str, config, backend: Backend) -> None:
    declared = {t.name: np_type_of_config(_type_name(t.data_type)) for t in config.input}
    actual = {s.name: s.dtype for s in backend.inputs()}
    if declared != actual:
        raise UsageError(
            f"model {name!r}: config.pbtxt declares inputs {declared}, the engine takes {actual}"
        )
    outs = {s.name for s in backend.outputs()}
    unknown = [t.name for t in config.output if t.name not in outs]
    if unknown:
        raise UsageError(
            f"model {name!r}: config.pbtxt declares outputs {unknown} the engine lacks ({sorted(outs)})"
        )
    if backend.max_batch_size and config.max_batch_size > backend.max_batch_size:
        raise UsageError(
            f"model {name!r}: max_batch_size {config.max_batch_size} exceeds the engine's "
            f"maximum batch {backend.max_batch_size} (rebuild the plan or lower max_batch_size)"
        )


def load_repository(repo: str | Path, engine: str = "auto", on_batch=None) -> dict[str, ServedModel]:
    """Every model of ``repo`` on ``engine`` (auto, trt, ort, ort-cuda)."""
    if engine.startswith("torch"):
        raise UsageError(
            "--engine torch serves a run directory (--model RUN_DIR), not a repository of ONNX/plan files"
        )
    models: dict[str, ServedModel] = {}
    try:
        for entry in find_models(repo):
            # The decoder is exported FP32 in every repository (it is small and reconstructions
            # are judged by eye): a reduced-precision engine runs it on its runtime's FP32 engine.
            named = engine_spec(engine).fp32_engine if entry.name == DECODER and engine != "auto" else engine
            backend = _backend_for_file(entry.model_file, named, entry.config)
            models[entry.name] = serve_model(entry.name, entry.version, entry.config, backend, on_batch)
            log.info(
                "loaded %s v%s (%s on %s)", entry.name, entry.version, entry.config.platform, backend.name
            )
    except BaseException:
        for m in models.values():
            m.close(0)
        raise
    return models


def _backend_for_file(path: Path, engine: str, config=None) -> Backend:
    from ..runtime.select import make_backend, resolve_auto
    from ..runtime.tuned import engine_for_model

    kw: dict[str, Any] = {}
    params = {k: v.string_value for k, v in config.parameters.items()} if config is not None else {}
    platform = (config.platform or config.backend) if config is not None else ""
    if engine == "auto":
        if config is not None:  # a tuned model names its engine; an openvino model its settings
            engine, why, kw = engine_for_model(path, platform, params)
        else:
            engine, why = resolve_auto(str(path), None)
        log.info("%s: --engine auto chose %s (%s)", path, engine, why)
    elif engine.startswith("ov") and platform == "openvino":
        from ..repository.openvino import options_from_parameters

        kw = options_from_parameters(params)
        kw.pop("inference_precision")  # the named engine's precision wins
    if path.suffix == ".plan" and engine != "trt":
        raise UsageError(f"{path} is a TensorRT plan; serve it with --engine trt (or auto)")
    return make_backend(engine, model=str(path), **kw)


def load_model_path(
    path: str | Path, engine: str, batching: BatchingOptions, on_batch=None
) -> dict[str, ServedModel]:
    """``--model PATH``: a .onnx or a .plan (capsnet), or a run directory on torch (capsnet +
    decoder). A run directory for an exported engine is exported into a repository first
    (`serve --model RUN` does it: cli/serve_cmd.py)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory; pass a run directory, model.onnx or model.plan")
    if path.is_dir():
        if engine.startswith("torch"):
            return _torch_models(path, engine, batching, on_batch)
        raise UsageError(
            f"{path} is a run directory: export it first (capsdeploy export --format triton) and "
            "serve the repository, or serve it on --engine torch"
        )
    if path.suffix not in (".onnx", ".plan"):
        raise UsageError(f"{path}: expected a run directory, a .onnx or a .plan file")
    if engine.startswith("torch"):
        raise UsageError("--engine torch needs --model RUN_DIR (the checkpoint), not a model file")
    backend = _backend_for_file(path, engine)
    platform = "tensorrt_plan" if path.suffix == ".plan" else "onnxruntime_onnx"
    try:
        meta = backend.metadata
        arch = meta.run_config.get("arch", "capsnet") if meta is not None else "capsnet"
        name = MAIN_MODEL.get(arch, CAPSNET)  # the name `export --format triton` gives it
        cfg = model_config(_decl_of(name, platform, backend), batching)
        return {name: serve_model(name, "1", cfg, backend, on_batch)}
    except BaseException:
        backend.close()
        raise


def _torch_models(run: Path, engine: str, batching: BatchingOptions, on_batch) -> dict[str, ServedModel]:
    from ..model.checkpoint import read_run_info
    from ..runtime.torch_backend import TorchBackend, TorchDecoderBackend

    device = "cuda" if engine == "torch-cuda" else "cpu"
    arch = read_run_info(run).arch
    backends: list[tuple[str, Backend]] = [(MAIN_MODEL[arch], TorchBackend(run, device=device))]
    if arch == "capsnet":
        backends.append((DECODER, TorchDecoderBackend(run, device=device)))
    models = {}
    for name, backend in backends:
        cfg = model_config(_decl_of(name, "pytorch_eager", backend), batching)
        models[name] = serve_model(name, "1", cfg, backend, on_batch)
    return models


def _decl_of(name: str, platform: str, backend: Backend) -> ModelDecl:
    def tensors(specs):
        return [
            TensorDecl(s.name, s.dtype, tuple(d if isinstance(d, int) else -1 for d in s.shape[1:]))
            for s in specs
        ]

    meta = backend.metadata
    params = {}
    if meta is not None:
        import json

        params = {
            "capsdeploy.normalization": json.dumps(meta.normalization),
            "capsdeploy.class_names": json.dumps(meta.class_names),
            "capsdeploy.precision": meta.precision,
        }
    return ModelDecl(name, platform, tensors(backend.inputs()), tensors(backend.outputs()), params)
