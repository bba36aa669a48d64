"""OpenVINO backend (CPU): one compiled model per file, one infer request per handle.

``clone()`` makes a new infer request on the shared compiled model (an infer request is not
thread-safe; the compiled model is), so each batcher worker gets its own. The compiled model is
cached in the model cache dir (``CACHE_DIR``), so a restart loads it instead of recompiling.
Importing this module needs neither torch nor openvino; the backend needs openvino.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..contract import ModelMetadata
from ..errors import CapsDeployError, NotOnThisMachine, UsageError
from .backend import Backend, TensorSpec

log = logging.getLogger("capsdeploy.ov")

PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
DEFAULT = object()  # "use capsdeploy's default" (None means "leave it to OpenVINO")


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "capsdeploy", "openvino")


@functools.lru_cache(maxsize=1)
def core():
    """One OpenVINO Core per process (it is thread-safe and holds the plugins)."""
    try:
        import openvino as ov
    except ImportError:
        raise UsageError("the ov engines need OpenVINO: pip install openvino") from None
    return ov.Core()


def device_capabilities(device: str = "CPU") -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of ``device`` (BF16, INT8, FP32, ...): what the
    plugin detected on this CPU, rather than a guess from its model name."""
    return list(core().get_property(device, "OPTIMIZATION_CAPABILITIES"))


class OvBackend(Backend):
    """An ONNX (or IR) file compiled by OpenVINO.

    ``inference_precision``: "f32" or "bf16" (None: OpenVINO's default, which is bf16 on CPUs
    with AVX512-BF16 or AMX). ``performance_hint``: LATENCY or THROUGHPUT (None: OpenVINO's
    default). ``streams`` / ``threads``: NUM_STREAMS / INFERENCE_NUM_THREADS. ``cache_dir``:
    the compiled-model cache (None: no cache). ``perf_count``: per-node timings (``node_times``).
    """

    name = "ov"

    def __init__(
        self,
        model_path: str | Path,
        inference_precision: str | None = "f32",
        performance_hint: str | None = "LATENCY",
        streams: int | str | None = None,
        threads: int | None = None,
        cache_dir: str | None = DEFAULT,  # type: ignore[assignment]
        device: str = "CPU",
        perf_count: bool = False,
    ):
        path = Path(model_path)
        if not path.is_file():
            raise UsageError(f"{path}: no such model file; create one with `capsdeploy export`")
        config: dict = {}
        if inference_precision is not None:
            if inference_precision not in PRECISIONS:
                raise UsageError(f"OpenVINO inference precision must be one of {sorted(PRECISIONS)}")
            precision = PRECISIONS[inference_precision]
            if precision == "bf16" and "BF16" not in device_capabilities(device):
                raise NotOnThisMachine(
                    f"--engine ov-bf16: OpenVINO's {device} plugin reports no BF16 support on this machine "
                    f"(capabilities: {', '.join(device_capabilities(device))}); the CPU lacks AVX512-BF16 "
                    "and AMX. Use --engine ov (f32) or ov-int8"
                )
            config["INFERENCE_PRECISION_HINT"] = precision
        if performance_hint is not None:
            if performance_hint.upper() not in HINTS:
                raise UsageError(f"OpenVINO performance hint must be one of {HINTS}")
            config["PERFORMANCE_HINT"] = performance_hint.upper()
        if streams is not None:
            config["NUM_STREAMS"] = str(streams).upper()
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if cache_dir is DEFAULT:
            cache_dir = default_cache_dir()
        if cache_dir:
            try:
                Path(cache_dir).mkdir(parents=True, exist_ok=True)
                config["CACHE_DIR"] = str(cache_dir)
            except OSError as e:
                # A read-only root (the serving image, Kubernetes' readOnlyRootFilesystem) has no
                # writable cache: compile every start instead of failing to start.
                log.warning("OpenVINO model cache %s is not usable (%s); compiling without it", cache_dir, e)
        if perf_count:
            config["PERF_COUNT"] = True
        self.path = path
        self.options = {
            "inference_precision": inference_precision,
            "performance_hint": performance_hint,
            "streams": streams,
            "threads": threads,
        }
        try:
            # Compiling from the path (not a read model) lets a cache hit skip reading the graph.
            self.compiled = core().compile_model(str(path), device, config)
        except CapsDeployError:
            raise
        except Exception as e:  # OpenVINO raises RuntimeError with multi-line messages
            raise CapsDeployError(
                f"{path}: OpenVINO cannot compile it ({type(e).__name__}: {str(e).strip().splitlines()[0][:300]})"
            ) from None
        self.inference_precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.metadata = _metadata(path)
        self._inputs = [_spec(p) for p in self.compiled.inputs]
        self._outputs = [_spec(p) for p in self.compiled.outputs]
        self._ports = [(p, s.name) for p, s in zip(self.compiled.outputs, self._outputs, strict=True)]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    @property
    def max_batch_size(self) -> int | None:
        first = self._inputs[0].shape[0] if self._inputs else None
        return first if isinstance(first, int) else None

    @property
    def math(self) -> str:
        """What OpenVINO computes in: its inference precision, after INT8 layers where the file has them."""
        bf16 = "bf" in self.inference_precision.lower()
        base = "BF16 (OpenVINO inference precision)" if bf16 else "FP32"
        if self.metadata is not None and self.metadata.precision == "int8":
            return f"INT8 convolutions, {base.split()[0]} elsewhere"
        return base

    @property
    def compute_precision(self) -> str | None:
        """bf16 when OpenVINO runs an FP32 file in bfloat16 (its default on CPUs with BF16)."""
        fp32_file = self.metadata is None or self.metadata.precision == "fp32"
        return "bf16" if fp32_file and "bf" in self.inference_precision.lower() else None

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # One request per handle: concurrent callers of the same handle wait (clone() for parallelism).
        with self._lock:
            result = self._request.infer(feeds, share_outputs=False)
            return {name: result[port] for port, name in self._ports}

    def node_times(self) -> list[dict]:
        """Per-node timings of the last inference (needs ``perf_count=True``): OpenVINO's
        PERF_COUNT, as benchmark_app -pc reports it."""
        rows = []
        for info in self._request.profiling_info:
            if str(info.status).endswith("EXECUTED"):
                rows.append(
                    {
                        "node": info.node_name,
                        "type": info.node_type,
                        "kernel": info.exec_type,
                        "real_ms": info.real_time.total_seconds() * 1e3,
                    }
                )
        return rows

    def clone(self) -> OvBackend:
        twin = copy.copy(self)
        twin._request = self.compiled.create_infer_request()
        twin._lock = threading.Lock()
        return twin

    def close(self) -> None:
        self._request = None


RT_INFO_KEY = "capsdeploy_metadata"  # where an OpenVINO IR (.xml) carries capsdeploy's metadata


def _metadata(path: Path) -> ModelMetadata | None:
    """capsdeploy's metadata from the ONNX file's metadata_props, or from an IR's rt_info (an IR
    written by OpenVINO's own tools, e.g. NNCF, with scripts/nncf_quantize.py)."""
    if path.suffix == ".xml":
        model = core().read_model(str(path))
        if not model.has_rt_info([RT_INFO_KEY]):
            return None
        return ModelMetadata.from_props(json.loads(model.get_rt_info([RT_INFO_KEY]).astype(str)))
    if path.suffix != ".onnx":
        return None
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})


def _spec(port) -> TensorSpec:
    names = sorted(port.get_names())
    name = port.get_any_name() if port.get_names() else names[0]
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(name, np.dtype(port.get_element_type().to_dtype()).name, shape)
