"""A dynamic batcher: requests from many threads or asyncio tasks, run as batches.

It wraps any Backend and knows nothing about HTTP. Knobs follow Triton's
dynamic batcher: ``max_batch_size`` (rows), ``max_queue_delay_us`` (how long the
oldest request may wait for others), ``preferred_batch_sizes``, a bounded queue
that refuses work at once when full, per-request timeouts, and ``workers``
(Triton's instance count: each worker runs on its own ``backend.clone()``).

What it promises, so a server built on it stays up:
- a request carries N >= 1 rows; it is checked against the backend's inputs at
  ``submit()``, so a bad request is refused alone and never reaches a batch;
- a request with more rows than ``max_batch_size`` (but within the engine's own
  maximum) runs as a batch of its own; beyond the engine's maximum it is refused;
- execution order is submission order: rows left over when a batch is cut to a
  preferred size stay at the front of the queue;
- a request whose caller gave up (timeout, cancellation) is never started;
  ``infer()`` and ``infer_async()`` return or raise within their timeout
  (``default_timeout_s`` when none is given); a bare ``submit()`` future whose
  deadline passed fails with ``RequestTimeoutError`` when a worker next looks;
  ``infer_queued_async()`` is Triton's timeout instead (the server's path): it bounds only the
  wait in the queue, a started request runs to the end, and it returns the request's timing
  (queue, and its batch's input/infer/output phases);
- a backend error fails only the requests of that batch, an error in the
  ``on_batch`` hook is logged, and the workers keep serving;
- ``close(drain_s)`` stops accepting, lets queued and running requests finish
  within the grace period, then fails what is left with ``BatcherClosedError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import numpy as np

from ..errors import CapsDeployError, InferenceError
from .backend import Backend, check_feeds

log = logging.getLogger("capsdeploy.batcher")


class QueueFullError(CapsDeployError):
    def __init__(self, size: int):
        super().__init__(f"the inference queue is full ({size} requests waiting); retry later", exit_code=1)


class RequestTimeoutError(CapsDeployError, TimeoutError):
    def __init__(self, waited: float):
        super().__init__(f"request timed out after {waited * 1000:.0f} ms", exit_code=1)


class BatcherClosedError(CapsDeployError):
    def __init__(self, detail: str = "it accepts no new requests"):
        super().__init__(f"the batcher is closed: {detail}", exit_code=1)


@dataclass(frozen=True)
class BatchStats:
    """What the metrics hook receives after each successful batch."""

    batch_size: int  # rows
    requests: int
    worker: int  # which worker (instance) ran it
    queue_seconds: tuple[float, ...]  # per request: submit -> batch start
    compute_seconds: float  # input + infer + output
    input_seconds: float = 0.0  # gathering the requests' rows into the batch's inputs
    infer_seconds: float = 0.0  # the backend's execution
    output_seconds: float = 0.0  # slicing the outputs back into the requests' rows


@dataclass(frozen=True)
class RequestTiming:
    """One request's share of its batch, as Triton reports it per request: its own queue time
    and the whole batch's compute phases."""

    queue_seconds: float
    input_seconds: float
    infer_seconds: float
    output_seconds: float


class TimedFuture(Future):
    """A request's future; ``timing`` is set just before its batch's result is."""

    timing: RequestTiming | None = None


@dataclass(eq=False)
class _Request:
    feeds: dict[str, np.ndarray]
    rows: int
    future: TimedFuture
    enqueued: float
    deadline: float


class DynamicBatcher:
    def __init__(
        self,
        backend: Backend,
        max_batch_size: int = 32,
        max_queue_delay_us: int = 1000,
        preferred_batch_sizes: Sequence[int] = (),
        max_queue_size: int = 1024,
        default_timeout_s: float = 30.0,
        workers: int = 1,
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        if max_batch_size < 1 or max_queue_size < 1 or workers < 1:
            raise ValueError("max_batch_size, max_queue_size and workers must be >= 1")
        _check_timeout(default_timeout_s)  # the same rule as a per-request timeout
        self.backend = backend
        # Never form a batch the engine cannot take (a TensorRT profile's maximum).
        engine_max = backend.max_batch_size
        self.max_batch_size = min(max_batch_size, engine_max) if engine_max else max_batch_size
        self.max_delay = max_queue_delay_us / 1e6
        self.preferred = sorted({b for b in preferred_batch_sizes if 1 <= b <= self.max_batch_size})
        self.max_queue_size = max_queue_size
        self.default_timeout_s = default_timeout_s
        self.on_batch = on_batch
        self._specs = backend.inputs()
        self._pending: deque[_Request] = deque()
        self._earliest = math.inf  # no queued deadline is earlier (may be stale-early, never late)
        self._cond = threading.Condition()
        self._gathering = threading.Lock()  # one worker forms a batch at a time
        self._accepting = True
        self._stopping = False
        self._running = 0  # batches being computed
        self._clones = [backend.clone() for _ in range(workers - 1)]
        self._workers = [
            threading.Thread(target=self._work, args=(i, b), name=f"batcher-{i}", daemon=True)
            for i, b in enumerate([backend, *self._clones])
        ]
        for w in self._workers:
            w.start()

    @property
    def workers(self) -> int:
        return len(self._workers)

    @property
    def stopped(self) -> bool:
        """Every worker thread has exited (after ``close()``)."""
        return not any(w.is_alive() for w in self._workers)

    def pending(self) -> int:
        """Requests queued, not yet running."""
        with self._cond:
            return len(self._pending)

    # -- submitting -------------------------------------------------------
    def _timeout(self, timeout_s: float | None) -> float:
        return _check_timeout(self.default_timeout_s if timeout_s is None else timeout_s)

    def submit(self, feeds: Mapping[str, np.ndarray], timeout_s: float | None = None) -> TimedFuture:
        """Queue one request (arrays with a leading batch axis of N >= 1 rows).

        Raises ``InvalidInputError`` for feeds that do not fit the model,
        ``QueueFullError`` when the queue is full and ``BatcherClosedError`` after
        ``close()``; all at once, before anything is queued."""
        checked = check_feeds(self._specs, feeds, self.backend.max_batch_size)
        # Our own copy: a caller may reuse its buffer before the batch runs.
        checked = {k: np.array(v, copy=True) for k, v in checked.items()}
        rows = next(iter(checked.values())).shape[0]
        t = self._timeout(timeout_s)
        now = time.perf_counter()
        req = _Request(checked, rows, TimedFuture(), now, now + t)
        with self._cond:
            if not self._accepting:
                raise BatcherClosedError()
            if len(self._pending) >= self.max_queue_size:
                raise QueueFullError(self.max_queue_size)
            self._pending.append(req)
            self._earliest = min(self._earliest, req.deadline)
            self._cond.notify_all()
        # A caller that cancels frees its place in the queue at once.
        req.future.add_done_callback(lambda f: self._forget(req) if f.cancelled() else None)
        return req.future

    def _forget(self, req: _Request) -> None:
        # ValueError: already taken or dropped.
        with self._cond, contextlib.suppress(ValueError):
            self._pending.remove(req)
            self._cond.notify_all()  # close() may be waiting for the queue to empty

    def infer(self, feeds: Mapping[str, np.ndarray], timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """Blocking: the request's own rows back, or an error within ``timeout_s``."""
        t = self._timeout(timeout_s)
        fut = self.submit(feeds, t)
        try:
            return fut.result(timeout=t)
        # Separate classes before Python 3.11, aliases of TimeoutError since.
        except (TimeoutError, concurrent.futures.TimeoutError):
            raise RequestTimeoutError(t) from None
        finally:
            if not fut.done():
                fut.cancel()  # any way out of the wait (timeout, KeyboardInterrupt): never started

    async def infer_async(self, feeds: Mapping[str, np.ndarray], timeout_s: float | None = None):
        t = self._timeout(timeout_s)
        fut = self.submit(feeds, t)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), t)
        except (TimeoutError, asyncio.TimeoutError):
            raise RequestTimeoutError(t) from None
        finally:
            if not fut.done():
                fut.cancel()

    async def infer_queued_async(
        self, feeds: Mapping[str, np.ndarray], queue_timeout_s: float | None = None
    ) -> tuple[dict[str, np.ndarray], RequestTiming]:
        """Triton's timeout: ``queue_timeout_s`` bounds only the wait in the queue (expiry raises
        ``RequestTimeoutError``); once its batch starts, the request runs to the end. None: no
        timeout. Returns the outputs and the request's timing."""
        t = threading.TIMEOUT_MAX if queue_timeout_s is None else min(queue_timeout_s, threading.TIMEOUT_MAX)
        fut = self.submit(feeds, t)
        try:
            result = await asyncio.wrap_future(fut)
        finally:
            if not fut.done():
                fut.cancel()  # the caller went away: never started
        assert fut.timing is not None  # set before the result
        return result, fut.timing

    # -- forming batches --------------------------------------------------
    def _next_batch(self) -> tuple[list[_Request] | None, list[_Request]]:
        """(the next batch, [] for none yet, or None to stop; requests that expired in the queue)."""
        expired: list[_Request] = []
        with self._cond:
            while True:
                now = time.perf_counter()
                self._drop_dead(now, expired)
                if expired:  # fail them now, outside the lock, then come back
                    return [], expired
                if not self._pending:
                    if self._stopping:
                        return None, expired
                    self._cond.wait()
                    continue
                take, ready = self._choose()
                # The oldest request waits at most max_queue_delay for company.
                wait = self._pending[0].enqueued + self.max_delay - now
                if ready or wait <= 0 or not self._accepting:
                    batch = []
                    for r in take:
                        self._pending.popleft()  # `take` is always a prefix of the queue
                        if r.future.set_running_or_notify_cancel():
                            batch.append(r)
                    if not batch:
                        self._cond.notify_all()  # the queue shrank: close() may be waiting
                        continue
                    self._running += 1
                    return batch, expired
                # Also wake for the earliest deadline, so expired requests fail on time.
                self._cond.wait(timeout=max(min(wait, self._earliest - now), 0.0))

    def _drop_dead(self, now: float, expired: list[_Request]) -> None:
        if now < self._earliest:  # the common case: O(1), no sweep of the queue
            return
        keep: deque[_Request] = deque()
        for r in self._pending:
            if r.future.cancelled():
                continue
            if now >= r.deadline:
                expired.append(r)
            else:
                keep.append(r)
        self._earliest = min((r.deadline for r in keep), default=math.inf)
        if len(keep) != len(self._pending):
            self._pending = keep
            self._cond.notify_all()

    def _choose(self) -> tuple[list[_Request], bool]:
        """(the prefix of the queue to run next, whether to run it without waiting)."""
        head = self._pending[0]
        if head.rows >= self.max_batch_size:
            return [head], True  # a large request runs alone
        take, rows, sizes = [], 0, []
        for r in self._pending:
            if rows + r.rows > self.max_batch_size:
                break
            take.append(r)
            rows += r.rows
            sizes.append(rows)
        overflow = len(take) < len(self._pending)
        ready = rows == self.max_batch_size or overflow or bool(self.preferred and rows >= self.preferred[-1])
        if self.preferred and rows not in self.preferred:
            # Cut to the longest prefix of a preferred size; the rest keeps its place.
            cuts = [i + 1 for i, n in enumerate(sizes) if n in self.preferred]
            if cuts:
                take = take[: cuts[-1]]
        return take, ready

    # -- the workers ------------------------------------------------------
    def _work(self, worker: int, backend: Backend) -> None:
        while True:
            try:
                with self._gathering:
                    batch, expired = self._next_batch()
                for r in expired:
                    _resolve(r.future, error=RequestTimeoutError(time.perf_counter() - r.enqueued))
                if batch is None:
                    return
                if not batch:
                    continue
                try:
                    self._run(worker, backend, batch)
                finally:
                    with self._cond:
                        self._running -= 1
                        self._cond.notify_all()
            except Exception:  # a bug here must not end the worker
                log.exception("batcher worker error; continuing")

    def _run(self, worker: int, backend: Backend, batch: list[_Request]) -> None:
        start = time.perf_counter()
        rows = sum(r.rows for r in batch)
        t_inputs = t_infer = start
        try:
            feeds = {
                s.name: batch[0].feeds[s.name]
                if len(batch) == 1
                else np.concatenate([r.feeds[s.name] for r in batch])
                for s in self._specs
            }
            # An engine whose profile starts above the batch gets zero rows, dropped after. Zeros,
            # not copies of a request's row: an engine or slicing bug that returned a pad row
            # instead of the request's then shows (tests compare against the unpadded row).
            pad = max(backend.min_batch_size - rows, 0)
            if pad:
                feeds = {
                    k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in feeds.items()
                }
            t_inputs = time.perf_counter()
            outputs = backend.infer(feeds)
            t_infer = time.perf_counter()
            for name, value in outputs.items():
                if len(value) != rows + pad:
                    raise InferenceError(
                        f"{backend.name} returned {len(value)} rows of {name!r} for a batch of {rows + pad}"
                    )
        except BaseException as e:  # SystemExit too: its callers must not wait forever
            error = e if isinstance(e, CapsDeployError) else InferenceError(f"{type(e).__name__}: {e}")
            log.warning("batch of %d requests failed: %s", len(batch), error)
            for r in batch:
                _resolve(r.future, error=error)
            if not isinstance(e, Exception):
                raise
            return
        offset, results = 0, []
        for r in batch:
            results.append({k: v[offset : offset + r.rows] for k, v in outputs.items()})
            offset += r.rows
        end = time.perf_counter()
        phases = (t_inputs - start, t_infer - t_inputs, end - t_infer)
        for r, result in zip(batch, results, strict=True):
            r.future.timing = RequestTiming(start - r.enqueued, *phases)  # read by infer_queued_async
            _resolve(r.future, result=result)
        if self.on_batch is not None:
            try:
                self.on_batch(
                    BatchStats(
                        rows,
                        len(batch),
                        worker,
                        tuple(start - r.enqueued for r in batch),
                        end - start,
                        *phases,
                    )
                )
            except Exception:
                log.exception("on_batch hook failed; ignored")

    # -- shutting down ----------------------------------------------------
    def close(self, drain_s: float = 0.0) -> None:
        """Stop accepting; give queued and running requests ``drain_s`` seconds to
        finish, then fail the queued rest with ``BatcherClosedError``. A batch
        already running always completes. Safe to call twice."""
        with self._cond:
            if not self._accepting:
                return
            self._accepting = False
            self._cond.notify_all()
            end = time.perf_counter() + max(drain_s, 0.0)
            while self._pending or self._running:
                left = end - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(timeout=left)
            self._stopping = True
            leftover = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for r in leftover:
            _resolve(
                r.future, error=BatcherClosedError(f"it closed before this request ran (drain {drain_s} s)")
            )
        end = time.perf_counter() + 10.0  # a running batch gets this long to finish
        for w in self._workers:
            w.join(timeout=max(end - time.perf_counter(), 0.0))
        for w, b in zip(self._workers[1:], self._clones, strict=True):
            if w.is_alive():  # still inside the engine: releasing its context now would be unsafe
                log.warning("%s still running after close(); its backend clone is left open", w.name)
            else:
                b.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_timeout(t) -> float:
    # Finite and within what the threading primitives accept (an infinite wait overflows).
    if not (isinstance(t, (int, float)) and math.isfinite(t) and 0 < t <= threading.TIMEOUT_MAX):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {t}")
    return float(t)


def _resolve(future: Future, result=None, error: BaseException | None = None) -> None:
    """Set a future's outcome unless its caller already cancelled it."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
