"""The transport-free dataplane: model lookup, readiness, request -> batcher -> response,
statistics, shared-memory regions and typed errors. The HTTP routes (``app``) and the gRPC
servicer (``grpc_server``) are thin codecs over it, as MLServer's ``DataPlane`` serves REST and
gRPC, so the two transports cannot drift apart.

Errors a client can cause are ``ServeError``: an HTTP status (Triton's mapping of its error
codes: invalid argument 400, not found 404, unavailable 503, unsupported 501, internal 500)
and Triton's failure reason for the statistics; ``grpc_server`` maps the same status to the
gRPC code Triton uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InferenceError, InvalidInputError
from ..runtime.batcher import BatcherClosedError, QueueFullError, RequestTimeoutError, RequestTiming
from ..version import __version__
from .metrics import ServerMetrics
from .models import ServedModel
from .protocol import InferRequest, ProtocolError
from .shm import SharedMemoryRegistry

EXTENSIONS = [
    "binary_tensor_data",
    "statistics",
    "model_configuration",
    "schedule_policy",
    "system_shared_memory",
    "cuda_shared_memory",  # status and unregister only: there is no GPU memory to map
]


# Decode or encode a request larger than this in a worker thread, not on the event loop, so
# health checks and other requests keep answering (both front ends).
OFF_LOOP_BYTES = 256 << 10


async def off_loop(nbytes: int, fn, *args):
    """``fn(*args)``; in a worker thread when it handles more than OFF_LOOP_BYTES."""
    if nbytes > OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


class ServeError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None, reason: str = "OTHER"):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.reason = reason  # Triton's failure reason: REJECTED, CANCELED, BACKEND, OTHER


@dataclass
class DataPlane:
    models: dict[str, ServedModel]
    max_body_bytes: int = 64 << 20
    ready: bool = True
    draining: bool = False  # after SIGTERM: answer with `Connection: close` so clients reconnect
    metrics: ServerMetrics = field(init=False)
    shm: SharedMemoryRegistry = field(default_factory=SharedMemoryRegistry)

    def __post_init__(self):
        self.metrics = ServerMetrics(self.models)

    def observe_batch(self, model: str, batch) -> None:
        self.metrics.batch_size.labels(model).observe(batch.batch_size)

    # -- lookups -----------------------------------------------------------
    def model(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise ServeError(404, f"unknown model {name!r}; this server serves {sorted(self.models)}")
        if version not in (None, "") and version != model.version:
            raise ServeError(404, f"model {name!r} has no version {version!r} (served: {model.version})")
        return model

    def model_ready(self, name: str, version: str | None = None) -> bool:
        self.model(name, version)
        return self.ready

    def server_metadata(self) -> dict:
        return {"name": "capsdeploy", "version": __version__, "extensions": EXTENSIONS}

    def repository_index(self) -> list[dict]:
        return [{"name": m.name, "version": m.version, "state": "READY"} for m in self.models.values()]

    def statistics(self, name: str | None = None, version: str | None = None) -> dict:
        chosen = [self.model(name, version)] if name else list(self.models.values())
        return {"model_stats": [m.stats.to_dict() for m in chosen]}

    # -- inference ---------------------------------------------------------
    @contextlib.asynccontextmanager
    async def inference(self, model: ServedModel):
        """Around one request on any transport: yields a ``Call`` to run it, records its outcome
        in the statistics and metrics on the way out, and turns every failure a client or the
        batcher causes into a ``ServeError``."""
        call = Call(self, model)
        outcome, reason = "error", "OTHER"
        try:
            try:
                yield call
            except ServeError as e:
                reason = e.reason
                raise
            except asyncio.CancelledError:  # the client went away
                reason = "CANCELED"
                raise
            except (ProtocolError, InvalidInputError) as e:
                raise ServeError(getattr(e, "status", 400), getattr(e, "message", str(e))) from None
            outcome = "success"
        finally:
            elapsed = time.perf_counter() - call.t0
            if outcome == "success" and call.timing is not None:
                model.stats.record_success(elapsed, call.timing)
            elif outcome != "success":
                model.stats.record_failure(elapsed, reason)
            self.metrics.request_latency.labels(model.name, outcome).observe(elapsed)


class Call:
    """One request's trip through a model's batcher."""

    def __init__(self, plane: DataPlane, model: ServedModel):
        self.plane, self.model = plane, model
        self.t0 = time.perf_counter()
        self.timing: RequestTiming | None = None

    async def run(self, request: InferRequest) -> dict[str, np.ndarray]:
        return await self.run_feeds(request.inputs, self.model.timeout_s(request.timeout_us))

    async def run_feeds(self, feeds: dict, queue_timeout_s: float | None = None) -> dict[str, np.ndarray]:
        if self.model.refuse_non_finite:
            for name, arr in feeds.items():
                if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                    bad = int((~np.isfinite(arr)).sum())
                    raise ServeError(
                        400,
                        f"input {name!r}: {bad} NaN or infinite value(s); this model refuses them "
                        "(its config parameter capsdeploy.refuse_non_finite)",
                    )
        try:
            results, self.timing = await self.model.batcher.infer_queued_async(feeds, queue_timeout_s)
        except QueueFullError as e:
            raise ServeError(503, str(e), {"retry-after": "1"}, "REJECTED") from None
        except RequestTimeoutError:
            # Triton: a request expires only while queued, as UNAVAILABLE.
            raise ServeError(503, "Request timeout expired", reason="REJECTED") from None
        except BatcherClosedError as e:
            raise ServeError(
                503, f"the server is shutting down: {e}", {"retry-after": "1"}, "REJECTED"
            ) from None
        except InferenceError as e:
            raise ServeError(500, str(e), reason="BACKEND") from None
        return results
