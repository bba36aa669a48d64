"""A dynamic batcher: single requests from many threads or tasks, run as batches.

It wraps any Backend and knows nothing about HTTP. Knobs follow Triton's
dynamic batcher: ``max_batch_size``, ``max_queue_delay_us``, optional
``preferred_batch_sizes``; a bounded queue refuses work at once when full
(back-pressure, never a hang), and each request may carry a timeout.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ..errors import CapsDeployError


class QueueFullError(CapsDeployError):
    def __init__(self, size: int):
        super().__init__(f"the inference queue is full ({size} requests waiting); retry later", exit_code=1)


class RequestTimeoutError(CapsDeployError, TimeoutError):
    def __init__(self, waited: float):
        super().__init__(f"request timed out after {waited * 1000:.0f} ms in the queue", exit_code=1)


@dataclass(frozen=True)
class BatchStats:
    """What the metrics hook receives after each batch."""

    batch_size: int
    queue_seconds: tuple[float, ...]  # per request: enqueue -> batch start
    compute_seconds: float


@dataclass
class _Request:
    feeds: dict[str, np.ndarray]  # each with a leading batch axis of 1
    future: Future
    enqueued: float
    deadline: float | None


_STOP = object()


class DynamicBatcher:
    def __init__(
        self,
        backends,
        max_batch_size: int = 32,
        max_queue_delay_us: int = 1000,
        preferred_batch_sizes: Sequence[int] = (),
        max_queue_size: int = 1024,
        default_timeout_s: float | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        """``backends``: one Backend, or several (one worker thread each, e.g. one
        TensorRT execution context per worker)."""
        self.backends = list(backends) if isinstance(backends, (list, tuple)) else [backends]
        if max_batch_size < 1 or max_queue_size < 1:
            raise ValueError("max_batch_size and max_queue_size must be >= 1")
        self.max_batch_size = max_batch_size
        self.max_delay = max_queue_delay_us / 1e6
        self.preferred = sorted({b for b in preferred_batch_sizes if 1 <= b <= max_batch_size})
        self.max_queue_size = max_queue_size
        self.default_timeout_s = default_timeout_s
        self.on_batch = on_batch
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue_size)
        self._closed = False
        self._workers = [
            threading.Thread(target=self._work, args=(b,), name=f"batcher-{i}", daemon=True)
            for i, b in enumerate(self.backends)
        ]
        for w in self._workers:
            w.start()

    # -- submitting -------------------------------------------------------
    def submit(self, feeds: dict[str, np.ndarray], timeout_s: float | None = None) -> Future:
        """Queue one sample: arrays with a leading batch axis of 1."""
        if self._closed:
            raise CapsDeployError("the batcher is closed")
        feeds = {k: _as_single(v) for k, v in feeds.items()}
        timeout_s = self.default_timeout_s if timeout_s is None else timeout_s
        now = time.perf_counter()
        req = _Request(feeds, Future(), now, now + timeout_s if timeout_s else None)
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            raise QueueFullError(self.max_queue_size) from None
        return req.future

    def infer(self, feeds: dict[str, np.ndarray], timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """Blocking: one sample in, its own rows out (batch axis of 1 kept)."""
        fut = self.submit(feeds, timeout_s)
        t = self.default_timeout_s if timeout_s is None else timeout_s
        try:
            # The worker enforces the deadline; the extra second only guards a stuck backend.
            return fut.result(timeout=None if t is None else t + 1.0)
        except TimeoutError:
            raise RequestTimeoutError(t) from None

    async def infer_async(self, feeds: dict[str, np.ndarray], timeout_s: float | None = None):
        return await asyncio.wrap_future(self.submit(feeds, timeout_s))

    # -- the worker -------------------------------------------------------
    def _gather(self) -> list[_Request] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        deadline = time.perf_counter() + self.max_delay
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                item = (
                    self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # let the other workers see it too
                break
            batch.append(item)
        if self.preferred and len(batch) not in self.preferred and len(batch) > self.preferred[0]:
            # Run the largest preferred size now; the rest go back to the front of the line.
            keep = max(p for p in self.preferred if p <= len(batch))
            for item in batch[keep:]:
                self._requeue(item)
            batch = batch[:keep]
        return batch

    def _requeue(self, item: _Request) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            item.future.set_exception(QueueFullError(self.max_queue_size))

    def _work(self, backend) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            start = time.perf_counter()
            live = []
            for r in batch:
                if r.deadline is not None and start > r.deadline:
                    r.future.set_exception(RequestTimeoutError(start - r.enqueued))
                elif r.future.set_running_or_notify_cancel():
                    live.append(r)
            if not live:
                continue
            try:
                names = live[0].feeds.keys()
                stacked = {n: np.concatenate([r.feeds[n] for r in live]) for n in names}
                outputs = backend.infer(stacked)
            except Exception as e:  # every caller of this batch sees the failure
                for r in live:
                    r.future.set_exception(e)
                continue
            compute = time.perf_counter() - start
            for i, r in enumerate(live):
                r.future.set_result({k: v[i : i + 1] for k, v in outputs.items()})
            if self.on_batch:
                self.on_batch(BatchStats(len(live), tuple(start - r.enqueued for r in live), compute))

    def close(self) -> None:
        """Stop the workers; requests still queued fail with an error."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item.future.set_exception(CapsDeployError("the batcher was closed"))
        for _ in self._workers:
            self._queue.put(_STOP)
        for w in self._workers:
            w.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _as_single(a: np.ndarray) -> np.ndarray:
    # No guessing: an image [1, H, W] and a batch of one [1, C, H, W] look alike.
    a = np.asarray(a)
    if a.ndim == 0 or a.shape[0] != 1:
        raise CapsDeployError(f"submit one sample: arrays need a leading batch axis of 1, got {a.shape}", 2)
    return a
