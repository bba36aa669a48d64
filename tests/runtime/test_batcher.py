"""The dynamic batcher. Each fault listed in issue 7 has a test here that failed on the old
batcher (a bad request failing its neighbours, a hook killing the worker, leftovers re-queued at
the back, timed-out requests computed later, `workers` only recorded)."""

import asyncio
import threading
import time

import numpy as np
import pytest

from capsdeploy.errors import InferenceError, InvalidInputError
from capsdeploy.runtime.backend import Backend, TensorSpec
from capsdeploy.runtime.batcher import (
    BatcherClosedError,
    BatchStats,
    DynamicBatcher,
    QueueFullError,
    RequestTimeoutError,
)
from capsdeploy.runtime.ort_backend import OrtBackend
from tests.helpers import wait_until


class Doubler(Backend):
    """Real (trivial) math with a controllable latency; records what it computed."""

    name = "doubler"

    def __init__(self, delay=0.0, fail=False, max_batch=None, gate=None):
        self.delay, self.fail, self.max_batch, self.gate = delay, fail, max_batch, gate
        self.seen: list[list[float]] = []  # x[:, 0] of every batch, in execution order
        self.threads: set[str] = set()

    def inputs(self):
        return [TensorSpec("x", "float32", (None, 2))]

    def outputs(self):
        return [TensorSpec("y", "float32", (None, 2))]

    @property
    def max_batch_size(self):
        return self.max_batch

    def _infer(self, feeds):
        self.seen.append(feeds["x"][:, 0].tolist())
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("backend exploded")
        return {"y": feeds["x"] * 2}


def x(value, rows=1):
    return {"x": np.full((rows, 2), value, np.float32)}


@pytest.fixture(scope="module")
def ort_model(tiny_export, tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("b") / "m.onnx"
    tiny_export(path, input_dtype="uint8")
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


def test_a_bad_request_is_refused_alone_and_never_reaches_a_batch():
    backend = Doubler(delay=0.05)
    with DynamicBatcher(backend, max_batch_size=8, max_queue_delay_us=50_000) as b:
        good = [b.submit(x(i)) for i in range(3)]
        for bad, words in (
            ({"x": np.ones((1, 3), np.float32)}, "axis 1 is 3"),
            ({"x": np.ones((1, 2), np.float64)}, "dtype float64, expected float32"),
            ({"z": np.ones((1, 2), np.float32)}, "unknown input"),
            ({"x": np.ones((0, 2), np.float32)}, "empty batch"),
        ):
            with pytest.raises(InvalidInputError, match=words):
                b.submit(bad)
        more = [b.submit(x(i)) for i in range(3, 5)]
        outs = [f.result(5)["y"][0, 0] for f in good + more]
    assert outs == [2.0 * i for i in range(5)]
    assert sorted(v for batch in backend.seen for v in batch) == [0, 1, 2, 3, 4]


def test_requests_carry_several_rows_and_get_exactly_their_own():
    backend = Doubler()
    # The batch is dispatched when its 9 rows are there; the long delay only caps the wait.
    with DynamicBatcher(backend, max_batch_size=9, max_queue_delay_us=5_000_000) as b:
        futures = [
            b.submit({"x": np.arange(2 * n, dtype=np.float32).reshape(n, 2) + 100 * n}) for n in (1, 3, 5)
        ]
        outs = [f.result(5)["y"] for f in futures]
    for n, out in zip((1, 3, 5), outs, strict=True):
        assert out.shape == (n, 2)
        np.testing.assert_array_equal(out, 2 * (np.arange(2 * n, dtype=np.float32).reshape(n, 2) + 100 * n))
    assert len(backend.seen) == 1 and len(backend.seen[0]) == 9  # one batch of 9 rows


def test_a_request_larger_than_the_batch_runs_alone_and_beyond_the_engine_is_refused():
    backend = Doubler(max_batch=10)
    with DynamicBatcher(backend, max_batch_size=4, max_queue_delay_us=20_000) as b:
        small = b.submit(x(1))
        big = b.submit(x(2, rows=7))
        assert big.result(5)["y"].shape == (7, 2) and small.result(5)["y"].shape == (1, 2)
        with pytest.raises(InvalidInputError, match="exceeds this engine's maximum of 10"):
            b.submit(x(3, rows=11))
    assert [len(batch) for batch in backend.seen] == [1, 7]
    # The batcher never forms batches above the engine's maximum.
    with DynamicBatcher(Doubler(max_batch=4), max_batch_size=64) as clamped:
        assert clamped.max_batch_size == 4


def test_a_failing_metrics_hook_is_logged_and_the_worker_keeps_serving(caplog):
    def hook(stats):
        raise ValueError("hook broke")

    with DynamicBatcher(Doubler(), max_batch_size=4, max_queue_delay_us=0, on_batch=hook) as b:
        for i in range(3):  # the old worker died on the first hook error; this hung
            assert b.infer(x(i), timeout_s=2)["y"][0, 0] == 2 * i
    assert "on_batch hook failed" in caplog.text


def test_a_backend_error_fails_only_its_batch():
    backend = Doubler(fail=True)
    with DynamicBatcher(backend, max_batch_size=4, max_queue_delay_us=20_000) as b:
        futures = [b.submit(x(i)) for i in range(3)]
        for f in futures:
            with pytest.raises(InferenceError, match="exploded"):
                f.result(5)
        backend.fail = False
        assert b.infer(x(5), timeout_s=2)["y"][0, 0] == 10


def test_wrong_output_row_count_fails_that_batch_with_a_clear_error():
    class Short(Doubler):
        def _infer(self, feeds):
            return {"y": feeds["x"][:1] * 2}

    with DynamicBatcher(Short(), max_batch_size=3, max_queue_delay_us=5_000_000) as b:
        futures = [b.submit(x(i)) for i in range(3)]
        for f in futures:
            with pytest.raises(InferenceError, match="returned 1 rows of 'y' for a batch of 3"):
                f.result(5)


def test_preferred_sizes_keep_submission_order():
    gate = threading.Event()
    backend = Doubler(gate=gate)
    with DynamicBatcher(
        backend, max_batch_size=8, max_queue_delay_us=100_000, preferred_batch_sizes=[4]
    ) as b:
        blocker = b.submit(x(-1, rows=8))  # a full batch: runs at once and holds the worker
        wait_until(lambda: b.pending() == 0)
        futures = [b.submit(x(i)) for i in range(10)]  # all queued before the worker looks again
        gate.set()
        outs = [f.result(5)["y"][0, 0] for f in futures]
        blocker.result(5)
    assert outs == [2.0 * i for i in range(10)]
    order = [v for batch in backend.seen[1:] for v in batch]
    assert order == list(range(10)), backend.seen  # old code ran [0,1,2,3] [8,9,4,5] [6,7]
    assert [len(batch) for batch in backend.seen[1:]] == [4, 4, 2]


def test_a_timed_out_request_is_never_computed():
    gate = threading.Event()
    backend = Doubler(gate=gate)
    with DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0) as b:
        first = b.submit(x(1))
        wait_until(lambda: b.pending() == 0)  # the worker is now blocked on the gate with request 1
        t0 = time.perf_counter()
        with pytest.raises(RequestTimeoutError):
            b.infer(x(2), timeout_s=0.1)
        assert time.perf_counter() - t0 < 1.0
        assert b.pending() == 0  # its place in the queue was freed at once
        gate.set()
        assert first.result(5)["y"][0, 0] == 2
        assert b.infer(x(3), timeout_s=2)["y"][0, 0] == 6
    assert [v for batch in backend.seen for v in batch] == [1, 3]


def test_infer_returns_within_the_default_timeout_when_the_backend_hangs():
    gate = threading.Event()
    b = DynamicBatcher(Doubler(gate=gate), max_batch_size=1, max_queue_delay_us=0, default_timeout_s=0.2)
    try:
        t0 = time.perf_counter()
        with pytest.raises(RequestTimeoutError):
            b.infer(x(1))  # no timeout given: the default applies
        assert time.perf_counter() - t0 < 1.0
    finally:
        gate.set()
        b.close()


def test_expired_requests_in_the_queue_are_failed_not_computed():
    gate = threading.Event()
    backend = Doubler(gate=gate)
    with DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0) as b:
        b.submit(x(1))
        wait_until(lambda: b.pending() == 0)
        late = b.submit(x(2), timeout_s=0.05)  # a bare future: nobody cancels it
        time.sleep(0.1)
        gate.set()  # the worker is free again, after the deadline
        with pytest.raises(RequestTimeoutError):
            late.result(2)
    assert [v for batch in backend.seen for v in batch] == [1]


def test_two_workers_run_on_the_backend_and_its_clone_at_once():
    ran_on = []
    meeting = threading.Barrier(2, timeout=5)  # both batches must be inside the engine together

    class Meeting(Doubler):
        def _infer(self, feeds):
            ran_on.append(id(self))
            meeting.wait()
            return super()._infer(feeds)

    backend = Meeting()
    stats = []
    with DynamicBatcher(
        backend, max_batch_size=1, max_queue_delay_us=0, workers=2, on_batch=stats.append
    ) as b:
        assert b.workers == 2
        futures = [b.submit(x(i)) for i in range(4)]
        assert [f.result(10)["y"][0, 0] for f in futures] == [0, 2, 4, 6]
    assert {s.worker for s in stats} == {0, 1}
    assert len(set(ran_on)) == 2 and id(backend) in ran_on  # the original and one clone


def test_full_queue_is_refused_at_once():
    gate = threading.Event()
    b = DynamicBatcher(Doubler(gate=gate), max_batch_size=1, max_queue_size=2, max_queue_delay_us=0)
    try:
        first = b.submit(x(1))
        wait_until(lambda: b.pending() == 0)  # the worker holds it; the queue is empty again
        b.submit(x(2))
        b.submit(x(3))
        t0 = time.perf_counter()
        with pytest.raises(QueueFullError):
            b.submit(x(4))
        assert time.perf_counter() - t0 < 0.5  # refused, not queued behind the gate
        gate.set()
        assert first.result(2)["y"][0, 0] == 2
    finally:
        gate.set()
        b.close()


def test_close_drains_within_the_grace_period_then_fails_the_rest():
    backend = Doubler(delay=0.1)
    b = DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0)
    futures = [b.submit(x(i)) for i in range(3)]
    b.close(drain_s=5)
    assert [f.result(0)["y"][0, 0] for f in futures] == [0, 2, 4]
    with pytest.raises(BatcherClosedError):
        b.submit(x(9))

    backend = Doubler(delay=0.3)
    b = DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0)
    futures = [b.submit(x(i)) for i in range(4)]
    time.sleep(0.05)
    b.close(drain_s=0.4)  # room for about two of the four
    done = [f for f in futures if f.exception(0) is None]
    failed = [f for f in futures if isinstance(f.exception(0), BatcherClosedError)]
    assert len(done) >= 1 and len(failed) >= 1 and len(done) + len(failed) == 4
    assert futures[0] in done  # running work always completes


def test_async_callers_and_async_timeout():
    gate = threading.Event()
    with DynamicBatcher(Doubler(), max_batch_size=16, max_queue_delay_us=5_000) as b:

        async def main():
            return await asyncio.gather(*(b.infer_async(x(i)) for i in range(16)))

        outs = asyncio.run(main())
    assert [o["y"][0, 0] for o in outs] == [2 * i for i in range(16)]

    backend = Doubler(gate=gate)
    with DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0) as b:
        b.submit(x(1))
        time.sleep(0.05)

        async def late():
            with pytest.raises(RequestTimeoutError):
                await b.infer_async(x(2), timeout_s=0.1)

        asyncio.run(late())
        gate.set()
    assert [v for batch in backend.seen for v in batch] == [1]


def test_bad_timeouts_are_refused_before_anything_is_queued():
    with DynamicBatcher(Doubler()) as b:
        for bad in (0, -1, float("inf"), float("nan")):
            with pytest.raises(ValueError, match="timeout"):
                b.infer(x(1), timeout_s=bad)
        assert b.pending() == 0
    with pytest.raises(ValueError, match="timeout"):
        DynamicBatcher(Doubler(), default_timeout_s=float("inf"))


def test_the_batch_computes_the_values_submitted_even_if_the_caller_reuses_its_buffer():
    gate = threading.Event()
    backend = Doubler(gate=gate)
    with DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0) as b:
        b.submit(x(0))
        wait_until(lambda: b.pending() == 0)
        buf = x(7)
        fut = b.submit(buf)
        buf["x"][:] = -5  # reused before the batch runs
        gate.set()
        assert fut.result(5)["y"][0, 0] == 14


def test_queue_timeout_bounds_only_the_wait_and_timing_covers_the_phases():
    """infer_queued_async (the server's path, Triton's timeout): a request whose batch started
    runs to the end past its timeout; one still queued when its timeout passes fails with
    RequestTimeoutError and never runs; the timing splits the batch into its three phases."""

    async def run(b):
        first = asyncio.ensure_future(b.infer_queued_async(x(1.0), 0.05))
        await asyncio.sleep(0.05)  # the first is running (0.3 s); the second waits behind it
        with pytest.raises(RequestTimeoutError):
            await b.infer_queued_async(x(2.0), 0.05)
        out, timing = await first
        return out, timing

    backend = Doubler(delay=0.3)
    with DynamicBatcher(backend, max_batch_size=1, max_queue_delay_us=0) as b:
        out, timing = asyncio.run(run(b))
    np.testing.assert_array_equal(out["y"], x(2.0)["x"])
    assert backend.seen == [[1.0]]  # the expired request never reached the engine
    assert timing.infer_seconds >= 0.29 and timing.input_seconds >= 0 and timing.output_seconds >= 0
    assert timing.queue_seconds < 0.25
