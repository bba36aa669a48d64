"""Many concurrent single-image clients: each calling the backend directly at batch 1,
versus all going through the dynamic batcher. Reports medians over repeats."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data import load_split
from ..data.preprocess import prepare_batch
from ..errors import InferenceError
from ..repository import BatchingOptions
from ..runtime.batcher import BatchStats, DynamicBatcher

# max_queue_size 0 means unbounded in config.pbtxt; the batcher takes a number.
UNBOUNDED_QUEUE = 1 << 30


@dataclass
class BatcherReport:
    """``bench batcher``: the clients' load, the batcher's settings, and per mode (direct_batch1,
    dynamic_batcher) the throughput per repeat, its median and the latency percentiles."""

    clients: int
    requests_per_client: int
    repeats: int
    max_batch_size: int
    max_queue_delay_us: int
    batcher_workers: int
    modes: dict[str, dict]
    batcher_speedup_median: float
    engine: str | None = None
    engine_reason: str | None = None  # why --engine auto chose it (not in the JSON: it names the engine)
    model: str | None = None
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The --json document, keys in the order the flag form always wrote them."""
        return {
            "engine": self.engine,
            "model": self.model,
            "environment": self.environment,
            "clients": self.clients,
            "requests_per_client": self.requests_per_client,
            "repeats": self.repeats,
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_us": self.max_queue_delay_us,
            "batcher_workers": self.batcher_workers,
            "modes": self.modes,
            "batcher_speedup_median": self.batcher_speedup_median,
        }


def _run_clients(clients: int, per_client: int, call, samples: list) -> tuple[float, list[float]]:
    """Throughput and latencies of ``clients`` threads each calling ``call`` ``per_client``
    times. A client that raises fails the whole run (InferenceError naming how many failed
    and the first error): a run with dead clients would time fewer requests than it reports."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(i: int):
        mine = []
        barrier.wait()
        try:
            for j in range(per_client):
                t0 = time.perf_counter()
                call(samples[(i * per_client + j) % len(samples)])
                mine.append(time.perf_counter() - t0)
        except BaseException as e:  # surfaced after the join
            with lock:
                errors.append(e)
            return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        first = errors[0]
        raise InferenceError(
            f"{len(errors)} of {clients} client threads failed; the first: {type(first).__name__}: {first}"
        ) from first
    return clients * per_client / (time.perf_counter() - t0), latencies


def bench_concurrency(
    backend,
    clients: int = 32,
    requests_per_client: int = 16,
    repeats: int = 5,
    max_batch_size: int = 32,
    max_queue_delay_us: int = 2000,
    workers: int = 1,
    dataset: str = "synthetic",
    split: str = "t10k",
    data_dir: str | None = None,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_size: int = 1024,
    default_timeout_us: int = 30_000_000,
) -> BatcherReport:
    meta = backend.metadata
    name = backend.inputs()[0].name
    pixels = load_split(dataset, split, data_dir, download=False, limit=256).images
    samples = [
        {name: prepare_batch(pixels[i : i + 1], meta.input_dtype, meta.normalization)}
        for i in range(len(pixels))
    ]
    backend.warmup()
    modes: dict[str, dict[str, Any]] = {}  # mode -> its JSON row
    batches: list[BatchStats] = []  # list.append is atomic: safe from the worker threads
    with DynamicBatcher(
        backend,
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=preferred_batch_sizes,
        max_queue_size=max_queue_size or UNBOUNDED_QUEUE,
        # 0 = none set, as serve reads Triton's default_timeout_microseconds: the batcher's own.
        **({"default_timeout_s": default_timeout_us / 1e6} if default_timeout_us else {}),
        workers=workers,
        on_batch=batches.append,
    ) as batcher:
        calls = {"direct_batch1": backend.infer, "dynamic_batcher": batcher.infer}
        for mode, call in calls.items():
            _run_clients(clients, 2, call, samples)  # warm-up round
            runs = [_run_clients(clients, requests_per_client, call, samples) for _ in range(repeats)]
            lat = np.array([x for _, lats in runs for x in lats]) * 1000
            modes[mode] = {
                "throughput_per_repeat": [round(t, 1) for t, _ in runs],
                "median_images_per_second": round(statistics.median(t for t, _ in runs), 1),
                "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
                "latency_ms_p99": round(float(np.percentile(lat, 99)), 2),
            }
    per_worker = [sum(1 for b in batches if b.worker == w) for w in range(batcher.workers)]
    modes["dynamic_batcher"].update(
        batches_per_worker=per_worker,
        mean_batch_size=round(sum(b.batch_size for b in batches) / max(len(batches), 1), 2),
    )
    ratio = (
        modes["dynamic_batcher"]["median_images_per_second"]
        / modes["direct_batch1"]["median_images_per_second"]
    )
    return BatcherReport(
        clients=clients,
        requests_per_client=requests_per_client,
        repeats=repeats,
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        batcher_workers=batcher.workers,
        modes=modes,
        batcher_speedup_median=round(ratio, 2),
    )


def bench_batcher(
    engine: str,
    model: str | None,
    checkpoint: str | None,
    batching: BatchingOptions,
    clients: int = 32,
    requests_per_client: int = 16,
    repeats: int = 5,
    threads: int | None = None,
    env: dict | None = None,
) -> BatcherReport:
    """``bench_concurrency`` on the backend ``engine`` builds from ``model`` or ``checkpoint``
    (auto: the one serve would pick), with the batcher configured as a repository's
    config.pbtxt configures serve's (instances are its workers)."""
    from ..runtime.engines import engine_spec
    from ..runtime.select import make_backend, resolve_auto

    batching.check()
    reason = None
    if engine == "auto":
        engine, reason = resolve_auto(model, checkpoint)
    backend_kw = {"threads": threads} if threads and engine_spec(engine).runtime in ("ort", "ov") else {}
    backend = make_backend(engine, model=model, checkpoint=checkpoint, **backend_kw)
    try:
        report = bench_concurrency(
            backend,
            clients=clients,
            requests_per_client=requests_per_client,
            repeats=repeats,
            max_batch_size=batching.max_batch_size,
            max_queue_delay_us=batching.max_queue_delay_us,
            workers=batching.instances,
            preferred_batch_sizes=batching.preferred_batch_sizes,
            max_queue_size=batching.max_queue_size,
            default_timeout_us=batching.default_timeout_us,
        )
    finally:
        backend.close()
    if env is None:
        from ..envinfo import environment

        env = environment()
    return replace(report, engine=engine, engine_reason=reason, model=model, environment=env)


def format_batcher(report: BatcherReport) -> str:
    """Per mode: median throughput, p50/p99 and each repeat's throughput; then the batcher's
    batches and the ratio."""
    lines = [f"{report.clients} clients x {report.requests_per_client} requests, {report.repeats} repeats"]
    for mode, m in report.modes.items():
        lines.append(
            f"{mode:<17} median {m['median_images_per_second']:>8.1f} img/s   p50 {m['latency_ms_p50']:.2f} ms"
            f"   p99 {m['latency_ms_p99']:.2f} ms   runs {m['throughput_per_repeat']}"
        )
    b = report.modes["dynamic_batcher"]
    lines.append(
        f"batcher: {report.batcher_workers} worker(s), batches per worker {b['batches_per_worker']}, "
        f"mean batch {b['mean_batch_size']}"
    )
    lines.append(f"dynamic batcher / direct batch-1: {report.batcher_speedup_median:.2f}x")
    return "\n".join(lines)
