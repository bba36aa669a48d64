"""ONNX -> TensorRT plan, written against the TensorRT 10 and 11 Python API.

Precision comes from the ONNX file (FP16 tensors, Q/DQ INT8): networks are
strongly typed, and no FP16/INT8 builder flag is set (TensorRT 11 removed
them). Builds are skipped when the engine cache already holds a plan for the
same ONNX bytes, TensorRT version, GPU, math mode and build options.

FP32 models build with TF32 off: ``BuilderFlag.TF32`` is on by default and
strong typing does not clear it, while the FP32 tolerance (1e-5) assumes true
FP32 math. The sidecar records which math the plan uses.

Compatibility. A plain plan runs only under the TensorRT version that built it, on
the GPU architecture it was built on. ``version_compatible`` sets
``BuilderFlag.VERSION_COMPATIBLE`` (TensorRT >= 8.6): the plan embeds TensorRT's lean
runtime and later TensorRT versions load it, provided the runtime allows engine host
code (``Runtime.engine_host_code_allowed``; Triton: ``--backend-config=tensorrt,
version-compatible=true``). ``exclude_lean_runtime`` adds ``EXCLUDE_LEAN_RUNTIME``: a
smaller plan that needs the lean runtime library shipped beside it. Neither relaxes the
GPU architecture. The sidecar's ``compatibility`` says which one a plan is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from ...errors import CapsDeployError, UsageError
from ...export.check import load_onnx
from ...fileio import atomic_path, hash_file, write_bytes_atomic, write_json_atomic
from ...version import __version__
from .environment import require_tensorrt

SIDECAR_SUFFIX = ".json"
log = logging.getLogger("capsdeploy.trt")


@dataclass(frozen=True)
class BuildOptions:
    min_batch: int = 1
    opt_batch: int = 32
    max_batch: int = 256
    workspace_mib: int = 2048
    optimization_level: int = 3  # TensorRT's default; 0..5
    timing_cache: str | None = None  # default: <cache>/timing-trt<version>-sm<cc>.cache
    engine_cache_dir: str | None = None  # default: <cache>/engines
    use_engine_cache: bool = True
    version_compatible: bool = False  # BuilderFlag.VERSION_COMPATIBLE: later TensorRT versions load it
    exclude_lean_runtime: bool = False  # BuilderFlag.EXCLUDE_LEAN_RUNTIME (with version_compatible)

    def check(self) -> None:
        if self.exclude_lean_runtime and not self.version_compatible:
            raise UsageError(
                "--exclude-lean-runtime applies to version-compatible plans: add --version-compatible"
            )


@dataclass(frozen=True)
class PlanBuild:
    """A plan ``build_engine`` wrote or took from the engine cache. ``to_dict()`` is the JSON
    report of `export --format trt`."""

    output: str
    cache_hit: bool
    cache_key: str
    sidecar: dict  # the document written beside the plan (sidecar_doc), as read back

    @property
    def compatibility(self) -> dict:
        """What the plan's loader needs: version_compatible, exclude_lean_runtime, runs_on."""
        return self.sidecar.get("compatibility", {})

    @property
    def tensorrt_version(self) -> str:
        return str(self.sidecar.get("built_for", {}).get("tensorrt", ""))

    @property
    def warnings(self) -> list[str]:
        return []  # TensorRT's builder warns through its logger, as it builds

    def to_dict(self) -> dict:
        return {
            "output": self.output,
            "cache_hit": self.cache_hit,
            "cache_key": self.cache_key,
            "sidecar": self.sidecar,
        }

    def describe(self) -> str:
        state = "reused from the engine cache" if self.cache_hit else "built"
        return "\n".join(
            [
                f"wrote {self.output} ({state}; sidecar {self.output}{SIDECAR_SUFFIX})",
                f"runs on: {self.compatibility.get('runs_on', '')}",
            ]
        )


def compatibility_flags(trt, opts: BuildOptions) -> list:
    """The BuilderFlags ``opts`` asks for, or a UsageError naming the one this TensorRT lacks."""
    wanted = [
        ("VERSION_COMPATIBLE", opts.version_compatible),
        ("EXCLUDE_LEAN_RUNTIME", opts.exclude_lean_runtime),
    ]
    flags = []
    for name, on in wanted:
        if not on:
            continue
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise UsageError(
                f"TensorRT {getattr(trt, '__version__', '?')} has no BuilderFlag.{name} (TensorRT >= 8.6 has it)"
            )
        flags.append(flag)
    return flags


def compatibility_doc(opts: BuildOptions, trt_version: str, compute_capability: str) -> dict:
    """What a plan's loader needs, for the sidecar and the repository config."""
    if opts.version_compatible:
        runs_on = (
            f"TensorRT {trt_version} or a later version TensorRT's version compatibility covers, with "
            "engine host code allowed"
            + ("" if not opts.exclude_lean_runtime else " and the lean runtime library of this version")
            + f"; GPUs of compute capability {compute_capability}"
        )
    else:
        runs_on = f"TensorRT {trt_version} exactly, on GPUs of compute capability {compute_capability}"
    return {
        "version_compatible": opts.version_compatible,
        "exclude_lean_runtime": opts.exclude_lean_runtime,
        "runs_on": runs_on,
    }


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "capsdeploy" / "tensorrt"


def profile_shapes(model: onnx.ModelProto, opts: BuildOptions) -> dict[str, tuple[tuple, tuple, tuple]]:
    """(min, opt, max) shape per graph input, varying only the batch axis."""
    if not opts.min_batch <= opts.opt_batch <= opts.max_batch or opts.min_batch < 1:
        raise UsageError(
            f"need 1 <= --min-batch <= --opt-batch <= --max-batch, got "
            f"{opts.min_batch}/{opts.opt_batch}/{opts.max_batch}"
        )
    inits = {i.name for i in model.graph.initializer}
    shapes = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        rest = []
        for axis, d in enumerate(dims[1:], start=1):
            if not d.HasField("dim_value"):
                raise UsageError(f"input {inp.name!r} axis {axis} is dynamic; only the batch axis may be")
            rest.append(d.dim_value)
        if dims and dims[0].HasField("dim_value"):  # a static-batch export
            b = dims[0].dim_value
            if (opts.min_batch, opts.max_batch) != (1, 256) and not opts.min_batch <= b <= opts.max_batch:
                raise UsageError(f"{inp.name!r} has a static batch of {b}, outside the requested profile")
            shapes[inp.name] = ((b, *rest),) * 3
        else:
            shapes[inp.name] = ((opts.min_batch, *rest), (opts.opt_batch, *rest), (opts.max_batch, *rest))
    return shapes


def timing_cache_path(root: Path, trt_version: str, compute_capability: str) -> Path:
    """One timing cache per TensorRT version and GPU architecture: another's file is useless
    to it (TensorRT refuses it, "The timing cache will not be used!")."""
    return root / f"timing-trt{trt_version}-sm{compute_capability.replace('.', '')}.cache"


def uses_tf32(metadata_props: dict) -> bool:
    """TF32 only where the model is not FP32 (a file without capsdeploy metadata counts as FP32)."""
    return metadata_props.get("capsdeploy.precision", "fp32") != "fp32"


def cache_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    opts: BuildOptions,
    tf32: bool = False,
) -> str:
    """Everything that changes the plan; the cache locations themselves do not."""
    relevant = {
        k: v
        for k, v in asdict(opts).items()
        if k not in ("timing_cache", "engine_cache_dir", "use_engine_cache")
    }
    doc = {
        "onnx_sha256": onnx_sha256,
        "tensorrt": trt_version,
        "gpu": gpu_name,
        "compute_capability": compute_capability,
        "options": relevant,
        "tf32": tf32,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def sidecar_doc(
    onnx_path: Path,
    onnx_sha256: str,
    key: str,
    env: dict,
    opts: BuildOptions,
    shapes: dict,
    metadata_props: dict,
    build_seconds: float | None,
    tf32: bool = False,
) -> dict:
    return {
        "capsdeploy_version": __version__,
        "cache_key": key,
        "built_from": {"onnx": str(onnx_path), "onnx_sha256": onnx_sha256},
        "built_for": env,
        "options": asdict(opts),
        "math": {"tf32": tf32},
        "profile": {name: {"min": s[0], "opt": s[1], "max": s[2]} for name, s in shapes.items()},
        "onnx_metadata": metadata_props,
        "build_seconds": build_seconds,
        "compatibility": compatibility_doc(
            opts, env.get("tensorrt", "?"), env.get("compute_capability", "?")
        ),
    }


def build_engine(onnx_path: str | Path, output: str | Path | None, opts: BuildOptions) -> PlanBuild:
    """Build (or take from the engine cache) the plan for ``onnx_path``.

    ``output`` None: the plan stays in the engine cache, named by its cache key, so two
    ``model.onnx`` files in different folders never overwrite each other's plan.
    Every plan's sidecar is written before the plan (each file atomically), so a crash
    never leaves a plan without its sidecar, and concurrent builders of one key both
    end with a valid pair."""
    onnx_path = Path(onnx_path)
    opts.check()
    model = load_onnx(onnx_path)  # clear errors for missing/corrupt files, before any GPU work
    shapes = profile_shapes(model, opts)
    env = require_tensorrt()
    if env.trt is not None:
        compatibility_flags(env.trt, opts)  # refuse before any work what this TensorRT lacks
    onnx_sha = hash_file(onnx_path)
    props = {p.key: p.value for p in model.metadata_props}
    tf32 = uses_tf32(props)
    built_for = {"tensorrt": env.version, "gpu": env.gpu_name, "compute_capability": env.compute_capability}
    key = cache_key(onnx_sha, env.version, env.gpu_name, env.compute_capability, opts, tf32)
    root = default_cache_root()
    cache_dir = Path(opts.engine_cache_dir) if opts.engine_cache_dir else root / "engines"
    cached = cache_dir / f"{key}.plan"
    if output is None:
        if not opts.use_engine_cache:
            raise UsageError("building without an output path needs the engine cache")
        output = cached
    output = Path(output)

    doc = _cached_sidecar(cached, key) if opts.use_engine_cache else None
    if doc is not None:
        if output != cached:
            write_json_atomic(str(output) + SIDECAR_SUFFIX, doc)
            with atomic_path(output) as tmp:
                shutil.copyfile(cached, tmp)
        return PlanBuild(str(output), True, key, doc)

    t0 = time.perf_counter()
    timing = (
        Path(opts.timing_cache)
        if opts.timing_cache
        else timing_cache_path(root, env.version, env.compute_capability)
    )
    plan = _build_plan(env, model, onnx_path, shapes, opts, timing, tf32)
    doc = sidecar_doc(
        onnx_path, onnx_sha, key, built_for, opts, shapes, props, round(time.perf_counter() - t0, 2), tf32
    )
    targets = [output] + ([cached] if opts.use_engine_cache and output != cached else [])
    for target in targets:
        write_json_atomic(str(target) + SIDECAR_SUFFIX, doc)
        write_bytes_atomic(target, plan)
    return PlanBuild(str(output), False, key, doc)


def _cached_sidecar(plan: Path, key: str) -> dict | None:
    """The sidecar of a complete cache entry, or None (missing, half-written or foreign)."""
    side = Path(str(plan) + SIDECAR_SUFFIX)
    if not (plan.is_file() and side.is_file()):
        return None
    try:
        doc = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("cache_key") == key else None


def _build_plan(
    env, model, onnx_path: Path, shapes: dict, opts: BuildOptions, timing_path: Path, tf32: bool
) -> bytes:
    trt = env.trt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    # Strongly typed: precision comes from the ONNX tensors. Required on 10.x for that
    # behaviour; accepted and ignored on 11.x, where every network is strongly typed.
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString(), str(onnx_path)):
        raise CapsDeployError("TensorRT could not parse the ONNX file: " + "; ".join(_parser_errors(parser)))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib << 20)
    config.builder_optimization_level = opts.optimization_level
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default, strong typing or not
    for flag in compatibility_flags(trt, opts):
        config.set_flag(flag)
    profile = builder.create_optimization_profile()
    for name, (lo, mid, hi) in shapes.items():
        profile.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(profile)
    apply_timing_cache(config, timing_path)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise CapsDeployError(
            "TensorRT failed to build the engine; rerun with a larger --workspace or see the log above"
        )
    save_timing_cache(config, timing_path)
    return bytes(plan)


def apply_timing_cache(config, path: Path) -> None:
    """Load ``path`` into the builder config; a corrupt or foreign file falls back to an empty
    cache with a warning. As Polygraphy's engine loader does (backend/trt/loader.py): create the
    cache from the file's bytes, and check the boolean ``set_timing_cache`` returns."""
    data = path.read_bytes() if path.is_file() else b""
    if data:
        try:
            cache = config.create_timing_cache(data)
            ok = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
        except Exception:  # the bindings raise on some malformed buffers
            ok = False
        if ok:
            return
        log.warning(
            "%s: timing cache not usable (corrupt, or from another TensorRT or GPU); starting empty", path
        )
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def save_timing_cache(config, path: Path) -> None:
    """Write the builder's timing cache; a failure here never costs the plan just built."""
    try:
        write_bytes_atomic(path, bytes(config.get_timing_cache().serialize()))
    except Exception as e:
        log.warning("%s: could not save the timing cache (%s); the engine was built", path, e)


def _parser_errors(parser) -> list[str]:
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        # node_name()/node_operator() exist since TensorRT 8.6; node() is the index.
        name = err.node_name() if hasattr(err, "node_name") else f"#{err.node()}"
        op = err.node_operator() if hasattr(err, "node_operator") else "?"
        out.append(f"node {name} ({op}): {err.desc()}")
    return out


def read_sidecar(plan_path: str | Path) -> dict:
    path = Path(str(plan_path) + SIDECAR_SUFFIX)
    if not path.is_file():
        raise UsageError(
            f"{plan_path}: no sidecar {path.name}; build the plan with `capsdeploy export --format trt`"
        )
    return json.loads(path.read_text())


def metadata_of_plan(plan_path: str | Path):
    """The ONNX metadata the plan was built from (preprocessing, precision, ...)."""
    from ...contract import ModelMetadata

    return ModelMetadata.from_props(read_sidecar(plan_path).get("onnx_metadata", {}))


def export_plan(
    output: str | Path,
    build: BuildOptions,
    onnx_model: str | None = None,
    checkpoint: str | None = None,
    export_options=None,
) -> PlanBuild:
    """A plan from an ONNX file, or from a fresh ONNX export of a checkpoint."""
    if onnx_model:
        return build_engine(onnx_model, output, build)
    if not checkpoint:
        raise UsageError("--format trt needs --model model.onnx or --checkpoint DIR")
    import tempfile

    from ...export import ExportOptions, export_onnx

    require_tensorrt()  # fail before exporting when no build can happen
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / (Path(output).stem + ".onnx")
        export_onnx(checkpoint, onnx_path, export_options or ExportOptions())
        return build_engine(onnx_path, output, build)


def repository_plan_builder(base: BuildOptions):
    """A plan builder for `export --format triton --platform trt`: each model's profile
    covers 1..max_batch_size, the batch sizes its config lets the scheduler form.
    Triton's TensorRT backend loads version-compatible plans with their lean runtime
    inside (``--backend-config=tensorrt,version-compatible=true``), so a repository
    never excludes it."""
    if base.exclude_lean_runtime:
        raise UsageError(
            "a Triton repository's plans keep TensorRT's lean runtime inside (Triton's TensorRT backend "
            "loads version-compatible plans that way); drop --exclude-lean-runtime"
        )

    def build(onnx_path: Path, plan_path: Path, batching) -> PlanBuild:
        top = batching.max_batch_size
        preferred = max(batching.preferred_batch_sizes, default=max(1, top // 2))
        opts = dataclasses.replace(base, min_batch=1, opt_batch=min(preferred, top), max_batch=top)
        return build_engine(onnx_path, plan_path, opts)

    return build
