"""Finding models in a repository and checking what protobuf cannot: that the config
agrees with its directory and with the model file it describes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .config import BACKEND_FILES, MODEL_FILES, parse_config
from .dtypes import np_type_of_config


@dataclass
class ModelEntry:
    name: str
    directory: Path
    config: Any  # tritonclient's ModelConfig protobuf (untyped)
    version: str
    model_file: Path


def find_models(repo: str | Path) -> list[ModelEntry]:
    """Every model directory (one holding config.pbtxt) of ``repo``, validated; its latest
    version is the one served (Triton's default version policy)."""
    root = Path(repo)
    if not root.is_dir():
        raise UsageError(
            f"{root}: no such model repository; create one with `capsdeploy export --format triton`"
        )
    entries = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cfg_path = d / "config.pbtxt"
        if not cfg_path.is_file():
            continue
        cfg = parse_config(cfg_path.read_text(), str(cfg_path))
        entry = _entry(d, cfg)
        problems = validate_model_dir(entry)
        if problems:
            raise UsageError(f"{cfg_path}: " + "; ".join(problems))
        entries.append(entry)
    if not entries:
        raise UsageError(
            f"{root}: no model directories (REPO/<model>/config.pbtxt); "
            "create one with `capsdeploy export --format triton`"
        )
    return entries


def _entry(d: Path, cfg) -> ModelEntry:
    # Triton accepts `platform: "onnxruntime_onnx"` or the newer `backend: "onnxruntime"`.
    filename = cfg.default_model_filename or MODEL_FILES.get(cfg.platform) or BACKEND_FILES.get(cfg.backend)
    if filename is None:
        raise UsageError(
            f"{d}/config.pbtxt: platform {cfg.platform!r} / backend {cfg.backend!r} is not served here "
            f"(supported: platforms {', '.join(MODEL_FILES)}; backends {', '.join(BACKEND_FILES)})"
        )
    version = served_version(d, cfg)
    path = d / str(version) / filename
    if not path.is_file():
        # Triton loads the version its policy names and fails when its file is missing; it
        # never falls back to an older version.
        raise UsageError(
            f"{d}: version {version} (the one served) has no {filename}; add it or remove {d / str(version)}"
        )
    return ModelEntry(d.name, d, cfg, str(version), path)


def version_dirs(d: Path) -> list[int]:
    """The version numbers of ``d``'s subdirectories as Triton reads them: positive integers
    written without leading zeros ("0", "01" and "abc" are ignored)."""
    return sorted(
        int(v.name) for v in d.iterdir() if v.is_dir() and v.name.isdigit() and not v.name.startswith("0")
    )


def served_version(d: Path, cfg) -> int:
    """The newest version the config's version_policy names (latest, all, or specific) among
    the version directories; we serve that one version."""
    present = version_dirs(d)
    policy = cfg.version_policy.WhichOneof("policy_choice") if cfg.HasField("version_policy") else None
    if policy == "specific":
        wanted = [v for v in cfg.version_policy.specific.versions if v in present]
        if not wanted:
            raise UsageError(
                f"{d}: version_policy names versions {list(cfg.version_policy.specific.versions)}, "
                f"present: {present or 'none'}"
            )
        return max(wanted)
    if not present:
        raise UsageError(f"{d}: no version directory (a positive integer without leading zeros, e.g. {d}/1/)")
    return present[-1]


def validate_model_dir(entry: ModelEntry) -> list[str]:
    """Problems with ``entry`` that parsing cannot see; empty when it is consistent."""
    cfg = entry.config
    problems = []
    if cfg.name and cfg.name != entry.name:
        problems.append(f"name {cfg.name!r} differs from its directory {entry.name!r} (Triton refuses it)")
    if cfg.max_batch_size < 0:
        problems.append("max_batch_size is negative")
    db = cfg.dynamic_batching
    if cfg.HasField("dynamic_batching"):
        if cfg.max_batch_size == 0:
            problems.append("dynamic_batching needs max_batch_size > 0")
        bad = [b for b in db.preferred_batch_size if not 1 <= b <= cfg.max_batch_size]
        if bad:
            problems.append(f"preferred_batch_size {bad} outside 1..max_batch_size ({cfg.max_batch_size})")
    for g in cfg.instance_group:
        if g.count < 1:
            problems.append(f"instance_group count {g.count} must be >= 1")
    if not cfg.input or not cfg.output:
        problems.append("inputs and outputs must be declared")
    for t in [*cfg.input, *cfg.output]:
        try:
            np_type_of_config(_type_name(t.data_type))
        except ValueError as e:
            problems.append(f"{t.name}: {e}")
    if entry.model_file.suffix == ".onnx" and not problems:
        problems += _against_onnx(cfg, entry.model_file)
    return problems


def _type_name(value: int) -> str:
    from .config import pb2

    return pb2().DataType.Name(value)


def _against_onnx(cfg, path: Path) -> list[str]:
    """Names, types and dims of the config against the ONNX graph's inputs and outputs."""
    import onnx
    from onnx import helper

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as e:  # a truncated or foreign file
        return [f"{path}: not a readable ONNX model ({type(e).__name__}: {str(e)[:200]})"]
    problems = []
    for kind, declared, actual in (("input", cfg.input, graph.input), ("output", cfg.output, graph.output)):
        by_name = {v.name: v for v in actual}
        for t in declared:
            v = by_name.get(t.name)
            if v is None:
                problems.append(f"{kind} {t.name!r} is not in {path.name} (it has {sorted(by_name)})")
                continue
            tt = v.type.tensor_type
            onnx_np = helper.tensor_dtype_to_np_dtype(tt.elem_type).name
            cfg_np = np_type_of_config(_type_name(t.data_type))
            if onnx_np != cfg_np:
                problems.append(f"{kind} {t.name!r}: config says {cfg_np}, {path.name} has {onnx_np}")
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            if cfg.max_batch_size > 0:
                if not dims or dims[0] not in (-1,):
                    problems.append(
                        f"{kind} {t.name!r}: max_batch_size > 0 needs a dynamic first (batch) dimension "
                        f"in {path.name}, which has {dims}"
                    )
                dims = dims[1:]
            if list(t.dims) != dims and not (
                len(t.dims) == len(dims) and all(a == b or b == -1 for a, b in zip(t.dims, dims, strict=True))
            ):
                problems.append(f"{kind} {t.name!r}: config dims {list(t.dims)}, {path.name} has {dims}")
    return problems
