"""Per-model counters in the shape of Triton's statistics extension; /stats and /metrics
both read them, so the two never disagree."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

FAIL_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def to_dict(self) -> dict:
        return {"count": self.count, "ns": self.ns}


@dataclass
class _BatchSize:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


class ModelStats:
    """Thread-safe: the batcher's workers record batches, the event loop records requests."""

    def __init__(self, name: str, version: str):
        self.name, self.version = name, version
        self._lock = threading.Lock()
        self.success = Duration()
        self.fail = Duration()
        self.fail_by_reason: dict[str, int] = dict.fromkeys(FAIL_REASONS, 0)
        self.queue = Duration()
        self.compute_input = Duration()
        self.compute_infer = Duration()
        self.compute_output = Duration()
        self.inference_count = 0  # rows
        self.execution_count = 0  # backend executions (batches)
        self.last_inference_ms = 0
        self._batches: dict[int, _BatchSize] = defaultdict(_BatchSize)

    def record_batch(self, batch) -> None:
        """A BatchStats from the batcher: one execution of ``batch.batch_size`` rows. Triton's
        batch_stats count executions; its three compute phases are counted together."""
        with self._lock:
            self.execution_count += 1
            self.inference_count += batch.batch_size
            self.last_inference_ms = int(time.time() * 1000)
            b = self._batches[batch.batch_size]
            b.compute_input.add(batch.input_seconds)
            b.compute_infer.add(batch.infer_seconds)
            b.compute_output.add(batch.output_seconds)

    def record_success(self, seconds: float, timing) -> None:
        """One successful request: its whole duration, its queue time and (as Triton charges
        them) its batch's compute phases. One locked update, so a reader never sees the
        compute counts disagree (perf_analyzer refuses statistics where they do)."""
        with self._lock:
            self.success.add(seconds)
            self.queue.add(timing.queue_seconds)
            self.compute_input.add(timing.input_seconds)
            self.compute_infer.add(timing.infer_seconds)
            self.compute_output.add(timing.output_seconds)

    def record_failure(self, seconds: float, reason: str = "OTHER") -> None:
        with self._lock:
            self.fail.add(seconds)
            self.fail_by_reason[reason if reason in FAIL_REASONS else "OTHER"] += 1

    def to_dict(self) -> dict:
        """One entry of Triton's ``model_stats`` list."""
        with self._lock:
            return {
                "name": self.name,
                "version": self.version,
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    "success": self.success.to_dict(),
                    "fail": self.fail.to_dict(),
                    "queue": self.queue.to_dict(),
                    "compute_input": self.compute_input.to_dict(),
                    "compute_infer": self.compute_infer.to_dict(),
                    "compute_output": self.compute_output.to_dict(),
                    "cache_hit": Duration().to_dict(),
                    "cache_miss": Duration().to_dict(),
                },
                "response_stats": {},
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": b.compute_input.to_dict(),
                        "compute_infer": b.compute_infer.to_dict(),
                        "compute_output": b.compute_output.to_dict(),
                    }
                    for size, b in sorted(self._batches.items())
                ],
                "memory_usage": [],
            }

    def snapshot(self) -> dict:
        """Plain numbers for the Prometheus collector."""
        with self._lock:
            return {
                "success": self.success.count,
                "fail": dict(self.fail_by_reason),
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "request_us": (self.success.ns + self.fail.ns) // 1000,
                "queue_us": self.queue.ns // 1000,
                "compute_infer_us": self.compute_infer.ns // 1000,
            }
