"""Prometheus metrics: Triton's names and labels where the meaning is the same, plus the
request-latency and batch-size histograms Triton users ask for."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import Metric

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class TritonCollector:
    """Reads every served model's ModelStats at scrape time."""

    def __init__(self, models: dict):
        self.models = models  # name -> ServedModel

    def collect(self):
        families = {
            "nv_inference_request_success": (
                "counter",
                "Number of successful inference requests, all batch sizes",
            ),
            "nv_inference_request_failure": (
                "counter",
                "Number of failed inference requests, all batch sizes",
            ),
            "nv_inference_count": ("counter", "Number of inferences performed (rows, not requests)"),
            "nv_inference_exec_count": ("counter", "Number of model executions performed (batches)"),
            "nv_inference_pending_request_count": (
                "gauge",
                "Instantaneous number of pending requests awaiting execution",
            ),
            "nv_inference_request_duration_us": (
                "counter",
                "Cumulative inference request duration in microseconds",
            ),
            "nv_inference_queue_duration_us": (
                "counter",
                "Cumulative inference queuing duration in microseconds",
            ),
            "nv_inference_compute_infer_duration_us": (
                "counter",
                "Cumulative compute inference duration in microseconds",
            ),
        }
        metrics = {name: Metric(name, doc, typ) for name, (typ, doc) in families.items()}
        for model in self.models.values():
            s = model.stats.snapshot()
            labels = {"model": model.name, "version": model.version}

            def add(name, value, extra=None, labels=labels):
                metrics[name].add_sample(name, {**labels, **(extra or {})}, value)

            add("nv_inference_request_success", s["success"])
            for reason, n in s["fail"].items():
                add("nv_inference_request_failure", n, {"reason": reason})
            add("nv_inference_count", s["inference_count"])
            add("nv_inference_exec_count", s["execution_count"])
            add("nv_inference_pending_request_count", model.pending())
            add("nv_inference_request_duration_us", s["request_us"])
            add("nv_inference_queue_duration_us", s["queue_us"])
            add("nv_inference_compute_infer_duration_us", s["compute_infer_us"])
        yield from metrics.values()


class ServerMetrics:
    def __init__(self, models: dict):
        self.registry = CollectorRegistry()
        self.registry.register(TritonCollector(models))
        self.request_latency = Histogram(
            "capsdeploy_request_duration_seconds",
            "End-to-end inference request latency (receipt to response), by model and outcome",
            ["model", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "capsdeploy_batch_size",
            "Rows per backend execution, by model",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
