"""Many concurrent single-image clients: each calling the backend directly at batch 1,
versus all going through the dynamic batcher. Reports medians over repeats."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import numpy as np

from ..data import load_split
from ..data.preprocess import prepare_batch
from ..errors import InferenceError
from ..runtime.batcher import BatchStats, DynamicBatcher


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
) -> dict:
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
    return {
        "clients": clients,
        "requests_per_client": requests_per_client,
        "repeats": repeats,
        "max_batch_size": max_batch_size,
        "max_queue_delay_us": max_queue_delay_us,
        "batcher_workers": batcher.workers,
        "modes": modes,
        "batcher_speedup_median": round(ratio, 2),
    }
