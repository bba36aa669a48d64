import threading
import time

import numpy as np
import pytest

from capsdeploy.export import ExportOptions, export_onnx
from capsdeploy.runtime.batcher import BatchStats, DynamicBatcher, QueueFullError, RequestTimeoutError
from capsdeploy.runtime.ort_backend import OrtBackend


class SlowDouble:
    """A backend doing real (trivial) math with a fixed latency, to control timing."""

    name = "slow-double"
    metadata = None

    def __init__(self, delay=0.0, fail=False):
        self.delay, self.fail, self.batches = delay, fail, []

    def infer(self, feeds):
        self.batches.append(len(feeds["x"]))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("backend exploded")
        return {"y": feeds["x"] * 2}

    def inputs(self):
        return []

    def outputs(self):
        return []

    def warmup(self):
        pass

    def close(self):
        pass


@pytest.fixture(scope="module")
def ort_model(tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("b") / "m.onnx"
    export_onnx(tiny_run, path, ExportOptions(input_dtype="uint8"))
    return path


def test_32_threads_get_their_own_rows_identical_to_unbatched(ort_model):
    backend = OrtBackend(ort_model)
    images = np.random.default_rng(0).integers(0, 256, (32, 1, 1, 28, 28), dtype=np.uint8)
    expected = [backend.infer({"image": img}) for img in images]
    stats: list[BatchStats] = []
    results = [None] * 32
    with DynamicBatcher(backend, max_batch_size=32, max_queue_delay_us=20_000, on_batch=stats.append) as b:
        barrier = threading.Barrier(32)

        def call(i):
            barrier.wait()
            results[i] = b.infer({"image": images[i]})

        threads = [threading.Thread(target=call, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for want, got in zip(expected, results, strict=True):
        for k in want:
            assert got[k].shape == want[k].shape
            np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-6)
    assert sum(s.batch_size for s in stats) == 32
    assert max(s.batch_size for s in stats) > 1  # requests really were batched
    assert all(q >= 0 for s in stats for q in s.queue_seconds) and all(s.compute_seconds > 0 for s in stats)


def test_full_queue_is_refused_at_once():
    backend = SlowDouble(delay=0.3)
    b = DynamicBatcher(backend, max_batch_size=1, max_queue_size=2, max_queue_delay_us=0)
    try:
        first = b.submit({"x": np.ones((1, 2))})
        time.sleep(0.05)  # the worker takes it; the queue is empty again
        b.submit({"x": np.ones((1, 2))})
        b.submit({"x": np.ones((1, 2))})
        t0 = time.perf_counter()
        with pytest.raises(QueueFullError):
            b.submit({"x": np.ones((1, 2))})
        assert time.perf_counter() - t0 < 0.05
        assert np.array_equal(first.result(2)["y"], np.full((1, 2), 2.0))
    finally:
        b.close()


def test_request_timeout_in_queue():
    backend = SlowDouble(delay=0.3)
    with DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0) as b:
        b.submit({"x": np.ones((1, 1))})
        time.sleep(0.02)
        late = b.submit({"x": np.ones((1, 1))}, timeout_s=0.05)
        with pytest.raises(RequestTimeoutError):
            late.result(2)


def test_preferred_batch_sizes_and_max_batch():
    backend = SlowDouble(delay=0.05)
    with DynamicBatcher(
        backend, max_batch_size=8, max_queue_delay_us=100_000, preferred_batch_sizes=[4]
    ) as b:
        futures = [b.submit({"x": np.full((1, 1), i)}) for i in range(10)]
        outs = [f.result(5)["y"][0, 0] for f in futures]
    assert outs == [2 * i for i in range(10)]
    assert max(backend.batches) <= 8
    assert backend.batches[0] == 4


def test_backend_errors_reach_every_caller_and_close_fails_pending():
    with DynamicBatcher(SlowDouble(fail=True), max_batch_size=4, max_queue_delay_us=10_000) as b:
        futures = [b.submit({"x": np.ones((1, 1))}) for _ in range(3)]
        for f in futures:
            with pytest.raises(RuntimeError, match="exploded"):
                f.result(2)
    b = DynamicBatcher(SlowDouble(delay=0.2), max_batch_size=1, max_queue_delay_us=0)
    b.submit({"x": np.ones((1, 1))})
    time.sleep(0.02)
    pending = b.submit({"x": np.ones((1, 1))})
    b.close()
    with pytest.raises(Exception, match="closed"):
        pending.result(2)


def test_single_sample_is_required():
    with DynamicBatcher(SlowDouble()) as b, pytest.raises(Exception, match="leading batch axis of 1"):
        b.submit({"x": np.ones((2, 3))})


def test_async_callers():
    import asyncio

    with DynamicBatcher(SlowDouble(), max_batch_size=16, max_queue_delay_us=5_000) as b:

        async def main():
            return await asyncio.gather(*(b.infer_async({"x": np.full((1, 1), i)}) for i in range(16)))

        outs = asyncio.run(main())
    assert [o["y"][0, 0] for o in outs] == [2 * i for i in range(16)]
