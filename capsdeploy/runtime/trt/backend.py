"""TensorRT backend (TensorRT 10 / 11 Python API): named IO tensors, set_input_shape per
batch, torch CUDA tensors as device buffers, execute_async_v3 on a non-default stream,
optional CUDA graph per batch size.

One execution context per instance: for concurrent workers, call ``clone()``,
which shares the deserialized engine and creates a new context and stream.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ...errors import CapsDeployError, UsageError
from ..backend import Backend, TensorSpec
from .build import metadata_of_plan
from .environment import require_tensorrt


class TrtBackend(Backend):
    name = "trt"

    def __init__(self, plan_path: str | Path, cuda_graphs: bool = False, _engine=None):
        import torch

        self._torch = torch
        env = require_tensorrt()  # before any Runtime is constructed
        trt = self._trt = env.trt
        plan_path = Path(plan_path)
        if _engine is None:
            if not plan_path.is_file():
                raise UsageError(
                    f"{plan_path}: no such plan; build one with `capsdeploy export --format trt`"
                )
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            _engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if _engine is None:
                raise CapsDeployError(
                    f"{plan_path}: TensorRT {env.version} cannot deserialize it (built by another TensorRT "
                    "version or for another GPU?); rebuild it on this machine"
                )
        self.path = plan_path
        self.engine = _engine
        self.context = _engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.metadata = metadata_of_plan(plan_path)
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[int, tuple] = {}  # batch -> (graph, static inputs, static outputs)
        self._lock = threading.Lock()  # one context: one inference at a time
        self._names = [_engine.get_tensor_name(i) for i in range(_engine.num_io_tensors)]
        is_input = lambda n: _engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT  # noqa: E731
        self._inputs = [n for n in self._names if is_input(n)]
        self._outputs = [n for n in self._names if not is_input(n)]

    def clone(self) -> TrtBackend:
        """A new execution context and stream on the same deserialized engine."""
        return TrtBackend(self.path, self.cuda_graphs, _engine=self.engine)

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

    def _bind(self, feeds_dev: dict) -> dict:
        for name, t in feeds_dev.items():
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise UsageError(f"input {name} shape {tuple(t.shape)} is outside the engine's profile")
            self.context.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            outs[name] = self._torch.empty(shape, dtype=self._torch_dtype(name), device=self.device)
            self.context.set_tensor_address(name, outs[name].data_ptr())
        return outs

    def _run(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise CapsDeployError("TensorRT execute_async_v3 failed; see the TensorRT log above")

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        # The base class checked names, exact dtypes and the profile's batch range.
        with self._lock, torch.cuda.stream(self.stream):
            dev = {
                n: torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device, non_blocking=True)
                for n in self._inputs
            }
            batch = next(iter(dev.values())).shape[0]
            if self.cuda_graphs:
                outs = self._infer_graph(batch, dev)
            else:
                outs = self._bind(dev)
                self._run()
            host = {n: t.to("cpu", non_blocking=True) for n, t in outs.items()}
            self.stream.synchronize()
        return {n: t.numpy() for n, t in host.items()}

    def _infer_graph(self, batch: int, dev: dict) -> dict:
        torch = self._torch
        entry = self._graphs.get(batch)
        if entry is None:
            static_in = {n: t.clone() for n, t in dev.items()}
            static_out = self._bind(static_in)
            self._run()  # TensorRT needs one run before capture (shape-dependent setup)
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=self.stream):
                    self._run()
            except Exception:
                # Some engines cannot be captured; fall back to eager for good.
                self.cuda_graphs = False
                outs = self._bind(dev)
                self._run()
                return outs
            entry = self._graphs[batch] = (graph, static_in, static_out)
        graph, static_in, static_out = entry
        for n, t in dev.items():
            static_in[n].copy_(t)
        graph.replay()
        return {n: t.clone() for n, t in static_out.items()}

    def close(self) -> None:
        self._graphs.clear()
        self.context = None
