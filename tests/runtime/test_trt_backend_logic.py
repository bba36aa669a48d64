"""TrtBackend's own bookkeeping on CPU: which context and graph serve which batch, when the
phase events are recorded relative to host-side binding, what a failed capture hands back.

Nothing here is TensorRT or CUDA. The engine is a stand-in with TensorRT's Python API shape
(numpy on the buffers' addresses); torch.cuda's streams, events and graphs are replaced by
host-side fakes with the same calls: a graph records the enqueues made during its capture and
replays them, an event records the host clock. What the GPU itself does is checked by
scripts/gpu_check.sh (the same stand-in with a CuPy kernel) and tests/runtime/test_gpu_trt.py.
"""

import contextlib
import ctypes
import itertools
import json
import threading
import time
import types

import numpy as np
import pytest
import torch

IMAGE = (1, 28, 28)
K = 28 * 28


def reference(x):
    s = x.reshape(len(x), -1).astype(np.float64).sum(1)
    return (s[:, None] * np.arange(1, 11) / K).astype(np.float32)


def _array(ptr, count):
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), (count,))


class FakeCuda:
    """Host-side stand-ins for the torch.cuda calls TrtBackend makes."""

    def __init__(self):
        self.local = threading.local()
        self.capturing: dict = {}  # stream id -> graph capturing on it
        self.ids = itertools.count(0x100)
        self.pool_ids = itertools.count(1)
        self.pool_calls = []

    def current(self):
        return getattr(self.local, "stream", None)

    def install(self, mp):
        fake = self

        class Stream:
            def __init__(self, device=None, priority=0):
                self.cuda_stream = next(fake.ids)

            def synchronize(self):
                pass

        class Event:
            def __init__(self, enable_timing=False):
                self.t = None

            def record(self, stream=None):
                self.t = time.perf_counter()

            def elapsed_time(self, end):
                return (end.t - self.t) * 1e3

        @contextlib.contextmanager
        def stream(s):
            before, fake.local.stream = fake.current(), s
            try:
                yield
            finally:
                fake.local.stream = before

        mp.setattr(torch.cuda, "Stream", Stream)
        mp.setattr(torch.cuda, "Event", Event)
        mp.setattr(torch.cuda, "stream", stream)
        mp.setattr(torch.cuda, "CUDAGraph", lambda: FakeGraph(fake))
        mp.setattr(torch.cuda, "graph_pool_handle", lambda: (0, next(fake.pool_ids)))
        mp.setattr(torch.cuda, "current_device", lambda: 0)
        mp.setattr(
            torch.cuda,
            "is_current_stream_capturing",
            lambda: fake.current() is not None and fake.current().cuda_stream in fake.capturing,
        )
        mp.setattr(
            torch._C,
            "_cuda_endAllocateToPool",
            lambda d, p: fake.pool_calls.append(("end", p)),
            raising=False,
        )
        mp.setattr(
            torch._C, "_cuda_releasePool", lambda d, p: fake.pool_calls.append(("release", p)), raising=False
        )


class FakeGraph:
    """Records what is enqueued on the capturing stream; replay runs it. capture_end raises
    when an enqueue invalidated the capture, as cudaStreamEndCapture does."""

    def __init__(self, cuda):
        self.cuda, self.ops, self.invalid, self.stream = cuda, [], False, None

    def capture_begin(self, pool=None, capture_error_mode="global"):
        assert capture_error_mode == "thread_local"  # trtexec: cudaStreamCaptureModeThreadLocal
        self.stream = self.cuda.current().cuda_stream
        self.cuda.capturing[self.stream] = self

    def capture_end(self):
        if self.cuda.capturing.pop(self.stream, None) is None:
            raise RuntimeError("CUDA error: operation not permitted when stream is not capturing")
        if self.invalid:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

    def replay(self):
        for op in self.ops:
            op()

    def reset(self):
        self.ops = []


class Engine:
    """TensorRT's ICudaEngine as TrtBackend uses it; enqueues compute row sums with numpy."""

    num_io_tensors = 2
    device_memory_size_v2 = 1 << 10

    def __init__(self, cuda, max_batch=32, bind_delay_s=0.0, fail_capture=()):
        self.cuda, self.max_batch, self.bind_delay_s, self.fail_capture = (
            cuda,
            max_batch,
            bind_delay_s,
            set(fail_capture),
        )

    def get_tensor_name(self, i):
        return ("image", "scores")[i]

    def get_tensor_mode(self, name):
        return "INPUT" if name == "image" else "OUTPUT"

    def get_tensor_profile_shape(self, name, profile):
        return [(1, *IMAGE), (self.max_batch // 2, *IMAGE), (self.max_batch, *IMAGE)]

    def get_tensor_dtype(self, name):
        return "float32"

    def get_tensor_shape(self, name):
        return (-1, *IMAGE) if name == "image" else (-1, 10)

    def create_execution_context(self, strategy=None):
        return Context(self)


class Context:
    def __init__(self, engine):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_device_memory(self, ptr, size):
        pass

    def set_input_shape(self, name, shape):
        time.sleep(self.engine.bind_delay_s)
        self.shapes[name] = tuple(shape)
        return shape[0] <= self.engine.max_batch

    def get_tensor_shape(self, name):
        return (self.shapes["image"][0], 10) if name == "scores" else self.shapes[name]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_ptr):
        n, x_ptr, y_ptr = self.shapes["image"][0], self.addresses["image"], self.addresses["scores"]

        def kernel():  # the arguments are fixed now, as a captured kernel's are
            _array(y_ptr, n * 10)[:] = reference(_array(x_ptr, n * K).reshape(n, *IMAGE)).ravel()

        graph = self.engine.cuda.capturing.get(stream_ptr)
        if graph is None:
            kernel()
        elif n in self.engine.fail_capture:
            graph.invalid = True  # an uncapturable call inside the enqueue
            return False
        else:
            graph.ops.append(kernel)
        return True


@pytest.fixture
def cuda(monkeypatch, tmp_path):
    import capsdeploy.runtime.trt.backend as backend

    fake = FakeCuda()
    fake.install(monkeypatch)
    monkeypatch.setattr(backend, "_streams_in_use", set())
    monkeypatch.setattr(backend, "_clear_cuda_error", lambda: None)
    fake.plan = tmp_path / "standin.plan"
    fake.plan.write_bytes(b"stand-in")
    (tmp_path / "standin.plan.json").write_text(json.dumps({"onnx_metadata": {}, "math": {"tf32": False}}))
    return fake


TRT = types.SimpleNamespace(
    __version__="stand-in",
    TensorIOMode=types.SimpleNamespace(INPUT="INPUT"),
    ExecutionContextAllocationStrategy=types.SimpleNamespace(USER_MANAGED="USER_MANAGED"),
    nptype=lambda dtype: np.float32,
)


def _backend(cuda, engine, graphs=False):
    from capsdeploy.runtime.trt.backend import TrtBackend

    b = TrtBackend(cuda.plan, cuda_graphs=graphs, _engine=engine, _trt=TRT)
    b.device = torch.device("cpu")  # host memory stands in for device memory
    return b


def _x(n, seed):
    return (np.random.default_rng(seed).integers(0, 256, (n, *IMAGE)) / 256).astype(np.float32)


def test_graphs_per_bucket_with_interleaved_batch_sizes(cuda):
    engine = Engine(cuda)
    eager, graphs = _backend(cuda, engine), _backend(cuda, engine, graphs=True)
    for i, n in enumerate((1, 7, 1, 32, 7, 3, 32, 1)):
        x = _x(n, i)
        np.testing.assert_allclose(eager.infer({"image": x})["scores"], reference(x), rtol=1e-6)
        np.testing.assert_allclose(graphs.infer({"image": x})["scores"], reference(x), rtol=1e-6)
    assert graphs.capture_state == {1: True, 4: True, 8: True, 32: True} and not graphs.capture_failures


def test_clones_in_threads_each_replay_their_own_graphs_on_their_own_stream(cuda):
    base = _backend(cuda, Engine(cuda), graphs=True)
    workers = [base, *(base.clone() for _ in range(3))]
    for w in workers[1:]:
        w.device = torch.device("cpu")
    errors = []

    def run(w, seed):
        try:
            for k, n in enumerate((5, 1, 16, 5, 3, 32) * 5):
                x = _x(n, 100 * seed + k)
                np.testing.assert_allclose(w.infer({"image": x})["scores"], reference(x), rtol=1e-6)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w, i)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({w.stream.cuda_stream for w in workers}) == 4
    assert all(w.capture_state == {1: True, 4: True, 8: True, 16: True, 32: True} for w in workers)


def test_h2d_phase_excludes_host_side_binding(cuda):
    """The old code recorded the second event after set_input_shape and friends: a 20 ms binding
    showed up as 20 ms of H2D."""
    b = _backend(cuda, Engine(cuda, bind_delay_s=0.02))
    b.record_phases = True
    b.infer({"image": _x(8, 0)})
    assert b.last_phases["h2d_ms"] < 5.0, b.last_phases


def test_a_failed_capture_releases_its_pool_and_runs_that_bucket_eagerly(cuda):
    """The old code ended the capture and went on: the allocator was never told to stop routing
    into the capture's pool, nor to release it (PyTorch's capture_end skips both when
    cudaStreamEndCapture fails)."""
    b = _backend(cuda, Engine(cuda, fail_capture={8}), graphs=True)
    for n in (5, 6, 16):
        x = _x(n, n)
        np.testing.assert_allclose(b.infer({"image": x})["scores"], reference(x), rtol=1e-6)
    assert b.capture_state == {8: False, 16: True}
    (failure,) = b.capture_failures
    pool = tuple(failure["pool"])
    assert failure["bucket"] == 8 and failure["allocator_released"] is True
    assert cuda.pool_calls == [("end", pool), ("release", pool)]  # that pool only; bucket 16's untouched
    assert not cuda.capturing  # no stream left capturing
