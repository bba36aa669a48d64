"""TensorRT backend (TensorRT 10 / 11 Python API): named IO tensors, set_input_shape per
batch, torch CUDA tensors as device buffers, execute_async_v3 on a non-default stream,
optional CUDA graphs.

Execution contexts and memory. Each backend (and each ``clone()``, one per batcher
worker) owns one eager execution context with its own stream. TensorRT gives a context
``device_memory_size_v2`` bytes of activation memory: the largest any shape of the
optimization profile needs, so ``--max-batch`` bounds it (reported as
``activation_bytes``).

CUDA graphs. A graph is tied to the shapes and tensor addresses its context had when
it was captured (TensorRT developer guide, "CUDA Graphs"), so replaying a batch-1
graph on a context last set up for batch 7 is wrong. As trtexec does (one graph per
context), every captured graph gets its own execution context. Batch sizes are
bucketed to powers of two (plus the profile maximum), padding rows, so a profile of
1..256 needs at most 9 graphs. The graph contexts are created with
``USER_MANAGED`` activation memory and share one buffer: they all run on this
backend's one stream, one at a time. Capture uses ``thread_local`` mode
(trtexec: ``cudaStreamCaptureModeThreadLocal``), so another worker's allocation
during a capture does not invalidate it, and no device-wide synchronize or
``empty_cache`` happens per new bucket. A capture that fails is ended and its
error cleared, and that bucket runs eagerly from then on. PyTorch's ``capture_end`` raises
before it hands the caching allocator back (``endAllocateToPool`` runs after
``cudaStreamEndCapture`` succeeds), so a failed capture would leave the allocator routing
into the graph's private pool and deferring frees forever; each capture therefore uses a
pool of its own (``graph_pool_handle``) that a failure ends and releases explicitly.
``capture_state`` says per bucket whether it was captured, so tests and benchmarks can
tell a graph run from a silent eager fallback.

Streams. ``torch.cuda.Stream()`` hands out one of 32 pooled streams per device round-robin,
so the 33rd backend in a process would share a stream with another (and another thread's
work on a stream being captured is illegal or gets captured). Each backend takes a pooled
stream no other live backend holds, and past 32 a dedicated stream from cuda-python.

Phases. All host-side binding (``set_input_shape``, output allocation,
``set_tensor_address``) happens before the first CUDA event, so ``h2d_ms`` is the copy
alone in both the eager and the graph path.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import CapsDeployError, InferenceError, UsageError
from ..backend import Backend, TensorSpec
from .build import metadata_of_plan, read_sidecar
from .environment import require_tensorrt

if TYPE_CHECKING:  # imported lazily at run time: the module loads without torch
    import torch

log = logging.getLogger("capsdeploy.trt")


def graph_buckets(min_batch: int, max_batch: int) -> list[int]:
    """Powers of two from the first one >= ``min_batch``, up to ``max_batch``, plus ``max_batch``."""
    buckets, b = [], 1
    while b < min_batch:
        b *= 2
    while b < max_batch:
        buckets.append(b)
        b *= 2
    return [*buckets, max_batch]


def bucket_for(n: int, buckets: list[int]) -> int:
    """The smallest bucket that holds ``n`` rows (callers checked n <= the largest)."""
    return next(b for b in buckets if b >= n)


@dataclass
class _Graph:
    context: Any  # a tensorrt IExecutionContext (tensorrt is untyped)
    graph: torch.cuda.CUDAGraph
    inputs: dict  # name -> static device tensor [bucket, ...]
    outputs: dict


class TrtBackend(Backend):
    name = "trt"

    def __init__(self, plan_path: str | Path, cuda_graphs: bool = False, _engine=None, _trt=None):
        """``_engine`` and ``_trt`` (a deserialized engine and the module it came from) are for
        ``clone()`` and for scripts/gpu_check.py's stand-in engine; users pass a plan path."""
        import torch

        self._torch = torch
        self.stream = None
        # Before any Runtime is constructed: TensorRT and a CUDA device are there.
        trt = self._trt = _trt if _trt is not None else require_tensorrt().trt
        plan_path = Path(plan_path)
        if _engine is None and not plan_path.is_file():
            raise UsageError(f"{plan_path}: no such plan; build one with `capsdeploy export --format trt`")
        sidecar = read_sidecar(plan_path)
        if _engine is None:
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            if runtime_needs_host_code(sidecar):
                # A version-compatible plan carries its lean runtime (host code) inside; TensorRT
                # refuses to run it unless the runtime is told the plan is trusted.
                self._runtime.engine_host_code_allowed = True
            _engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if _engine is None:
                raise CapsDeployError(
                    f"{plan_path}: TensorRT {trt.__version__} cannot deserialize it (built by another TensorRT "
                    "version or for another GPU?); rebuild it on this machine"
                )
        self.path = plan_path
        self.engine = _engine
        self.context = _engine.create_execution_context()
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.stream, self._release_stream = acquire_stream(torch, self.device)
        self.metadata = metadata_of_plan(plan_path)
        self.tf32 = bool(sidecar.get("math", {}).get("tf32", False))
        self.version_compatible = bool(sidecar.get("compatibility", {}).get("version_compatible", False))
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[int, _Graph | None] = {}  # bucket -> graph, or None: capture failed
        self.capture_failures: list[dict] = []  # {"bucket", "error", "allocator_released"}
        self._graph_memory = None  # the activation buffer the graph contexts share
        self._lock = threading.Lock()  # one stream: one inference at a time
        self._names = [_engine.get_tensor_name(i) for i in range(_engine.num_io_tensors)]
        is_input = lambda n: _engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT  # noqa: E731
        self._inputs = [n for n in self._names if is_input(n)]
        self._outputs = [n for n in self._names if not is_input(n)]
        self._buckets = graph_buckets(self.min_batch_size, self.max_batch_size)
        # When set, every inference records CUDA events around its three phases and leaves
        # {"h2d_ms", "compute_ms", "d2h_ms"} in last_phases (trtexec's H2D / GPU compute / D2H).
        self.record_phases = False
        self.last_phases: dict | None = None

    def clone(self) -> TrtBackend:
        """A new execution context, stream and graph set on the same deserialized engine."""
        return TrtBackend(self.path, self.cuda_graphs, _engine=self.engine, _trt=self._trt)

    @property
    def capture_state(self) -> dict[int, bool]:
        """bucket -> True (its graph replays) or False (its capture failed; it runs eagerly)."""
        return {b: g is not None for b, g in sorted(self._graphs.items())}

    @property
    def math(self) -> str:
        return "TF32 allowed" if self.tf32 else "FP32 (TF32 off)"

    @property
    def activation_bytes(self) -> int:
        """Activation memory of one execution context, set by the profile's largest shapes."""
        e = self.engine
        return int(e.device_memory_size_v2 if hasattr(e, "device_memory_size_v2") else e.device_memory_size)

    def _profile_batch(self, which: int) -> int:
        # get_tensor_profile_shape(name, profile) -> [min, opt, max] shapes (TensorRT 10/11 API).
        return int(self.engine.get_tensor_profile_shape(self._inputs[0], 0)[which][0])

    @property
    def min_batch_size(self) -> int:
        return self._profile_batch(0)

    @property
    def max_batch_size(self) -> int:
        return self._profile_batch(2)

    def _spec(self, name: str) -> TensorSpec:
        dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name))).name
        shape = tuple(d if d >= 0 else None for d in self.engine.get_tensor_shape(name))
        return TensorSpec(name, dtype, shape)

    def inputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self._inputs]

    def outputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self._outputs]

    def _torch_dtype(self, name: str):
        np_dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
        return self._torch.from_numpy(np.zeros(0, np_dtype)).dtype

    def _bind(self, context, feeds_dev: dict) -> dict:
        """Set shapes and addresses on ``context``; return fresh output tensors bound to it."""
        for name, t in feeds_dev.items():
            if not context.set_input_shape(name, tuple(t.shape)):
                raise UsageError(f"input {name} shape {tuple(t.shape)} is outside the engine's profile")
            context.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self._outputs:
            shape = tuple(context.get_tensor_shape(name))
            outs[name] = self._torch.empty(shape, dtype=self._torch_dtype(name), device=self.device)
            context.set_tensor_address(name, outs[name].data_ptr())
        return outs

    def _run(self, context) -> None:
        assert self.stream is not None  # None only before __init__ acquires it and after close()
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise InferenceError("TensorRT execute_async_v3 failed; see the TensorRT log above")

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        # The base class checked names, exact dtypes and the profile's batch range.
        host_in = {n: torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self._inputs}
        n = next(iter(host_in.values())).shape[0]
        with self._lock, torch.cuda.stream(self.stream):
            # Events sit right around the device work: host preparation and every binding call
            # happen before the first one, so the phases are what trtexec calls H2D, GPU
            # compute and D2H, in the eager and the graph path alike.
            events = [torch.cuda.Event(enable_timing=True) for _ in range(4)] if self.record_phases else None
            mark = (lambda k: events[k].record(self.stream)) if events else (lambda k: None)
            entry = self._graph(bucket_for(n, self._buckets)) if self.cuda_graphs else None
            if entry is None:
                dev = {
                    name: torch.empty(t.shape, dtype=t.dtype, device=self.device)
                    for name, t in host_in.items()
                }
                outs = self._bind(self.context, dev)  # host work, before the first event
                targets = dev
            else:  # straight into the graph's static inputs
                targets = {name: entry.inputs[name][:n] for name in host_in}
            mark(0)
            for name, t in host_in.items():
                targets[name].copy_(t, non_blocking=True)
            mark(1)
            if entry is None:
                self._run(self.context)
            else:
                entry.graph.replay()
                outs = {name: t[:n] for name, t in entry.outputs.items()}
            mark(2)
            host = {name: t.to("cpu", non_blocking=True) for name, t in outs.items()}
            mark(3)
            assert self.stream is not None  # as in _run
            self.stream.synchronize()  # this stream only
            if events:
                self.last_phases = phase_times(events)
        return {name: t.numpy() for name, t in host.items()}

    def _graph(self, bucket: int) -> _Graph | None:
        if bucket not in self._graphs:
            self._graphs[bucket] = self._capture(bucket)
        return self._graphs[bucket]

    def _shared_graph_memory(self):
        if self._graph_memory is None:
            self._graph_memory = self._torch.empty(
                max(self.activation_bytes, 1), dtype=self._torch.uint8, device=self.device
            )
        return self._graph_memory

    def _capture(self, bucket: int) -> _Graph | None:
        torch, trt = self._torch, self._trt
        context = self.engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        memory = self._shared_graph_memory()
        if hasattr(context, "set_device_memory"):  # TensorRT >= 10.1: address and size
            context.set_device_memory(memory.data_ptr(), memory.numel())
        else:
            context.device_memory = memory.data_ptr()
        static_in = {
            s.name: torch.zeros((bucket, *s.shape[1:]), dtype=self._torch_dtype(s.name), device=self.device)
            for s in self.inputs()
        }
        static_out = self._bind(context, static_in)
        self._run(context)  # one enqueue before capture: TensorRT's shape-dependent setup
        assert self.stream is not None  # as in _run
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        pool = torch.cuda.graph_pool_handle()  # our own id: a failed capture can release it
        capturing = False
        try:
            graph.capture_begin(pool=pool, capture_error_mode="thread_local")
            capturing = True
            self._run(context)
            graph.capture_end()
            capturing = False
        except Exception as e:
            ended = False  # capture_end ran to completion: it handed the allocator back itself
            if capturing:  # end the capture so the stream is usable again
                with contextlib.suppress(Exception):
                    graph.capture_end()
                    ended = True
            released = release_failed_capture(torch, graph, self.device.index, pool, ended)
            _clear_cuda_error()
            self.capture_failures.append(
                {"bucket": bucket, "error": str(e)[:300], "allocator_released": released, "pool": list(pool)}
            )
            log.warning(
                "CUDA graph capture for batch %d failed (%s); that batch size runs eagerly", bucket, e
            )
            return None
        return _Graph(context, graph, static_in, static_out)

    def close(self) -> None:
        self._graphs.clear()
        self._graph_memory = None
        self.context = None
        if self.stream is not None:
            self._release_stream()
            self.stream = None

    def __del__(self):
        with contextlib.suppress(Exception):
            if self.stream is not None:
                self._release_stream()


def runtime_needs_host_code(sidecar: dict) -> bool:
    """A version-compatible plan that embeds TensorRT's lean runtime (host code) needs
    ``Runtime.engine_host_code_allowed``; one built with the lean runtime excluded does not."""
    c = sidecar.get("compatibility", {})
    return bool(c.get("version_compatible")) and not c.get("exclude_lean_runtime")


# -- streams ----------------------------------------------------------------------------
STREAM_POOL_SIZE = 32  # PyTorch's pooled streams per device and priority (c10/cuda/CUDAStream.cpp)
_streams_lock = threading.Lock()
_streams_in_use: set[tuple[int, int]] = set()  # (device index, cudaStream_t) held by live backends


def acquire_stream(torch, device) -> tuple[torch.cuda.Stream, Callable[[], None]]:
    """A CUDA stream no other live backend of this process holds, and its release function.

    Pooled streams first (cheap, never destroyed); when all 32 are held, a dedicated stream
    created with cuda-python (``cudaStreamCreateWithFlags``, non-blocking) and destroyed on
    release. Without cuda-python the 33rd backend is refused rather than given a shared one."""
    with _streams_lock:
        for _ in range(STREAM_POOL_SIZE):
            stream = torch.cuda.Stream(device=device)
            key = (device.index, int(stream.cuda_stream))
            if key not in _streams_in_use:
                _streams_in_use.add(key)
                return stream, functools.partial(_release_key, key)
        cudart = _cudart()
        if cudart is None:
            raise UsageError(
                f"more than {STREAM_POOL_SIZE} TensorRT execution contexts in one process need a "
                "dedicated CUDA stream each: install cuda-python (`pip install cuda-python`) or use fewer "
                "workers/instances"
            )
        with torch.cuda.device(device):
            err, raw = cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking)
        if err != cudart.cudaError_t.cudaSuccess:
            raise CapsDeployError(f"cudaStreamCreateWithFlags failed ({err})")
        stream = torch.cuda.ExternalStream(int(raw), device=device)
        key = (device.index, int(raw))
        _streams_in_use.add(key)

    def release():
        _release_key(key)
        cudart.cudaStreamDestroy(raw)

    return stream, release


def _release_key(key) -> None:
    with _streams_lock:
        _streams_in_use.discard(key)


def release_failed_capture(torch, graph, device_index: int, pool, ended: bool = False) -> bool:
    """Hand the caching allocator back after a capture that raised: stop routing allocations
    into ``pool`` and release it (PyTorch's own ``capture_end`` skips both when
    ``cudaStreamEndCapture`` fails: aten/src/ATen/cuda/CUDAGraph.cpp). Where ``capture_end``
    completed (``ended``), it already did, and ``graph.reset()`` releases the pool. True when
    the allocator is known to be handed back."""
    if ended:
        with contextlib.suppress(Exception):
            graph.reset()
        return True
    end = getattr(torch._C, "_cuda_endAllocateToPool", None) or getattr(  # torch >= 2.8, older
        torch._C, "_cuda_endAllocateCurrentStreamToPool", None
    )
    release = getattr(torch._C, "_cuda_releasePool", None)
    done = False
    if end is not None and release is not None:
        try:
            end(device_index, pool)
            release(device_index, pool)
            done = True
        except Exception as e:  # already handed back: nothing held
            log.debug("releasing the failed capture's pool: %s", e)
    with contextlib.suppress(Exception):
        graph.reset()
    return done


def phase_times(events) -> dict:
    """Four recorded CUDA events -> milliseconds spent copying in, computing and copying out."""
    return {
        "h2d_ms": events[0].elapsed_time(events[1]),
        "compute_ms": events[1].elapsed_time(events[2]),
        "d2h_ms": events[2].elapsed_time(events[3]),
    }


def _clear_cuda_error() -> None:
    """Reset the CUDA runtime's last error after a failed capture (trtexec calls
    cudaGetLastError). Best effort: cuda-python is optional."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            return
    cudart.cudaGetLastError()


def _cudart():
    """cuda-python's runtime module, or None."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            return None
    return cudart
