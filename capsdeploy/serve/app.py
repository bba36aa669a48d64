"""The HTTP server: KServe V2 as Triton speaks it, /v1/predict for images, the page, /metrics.

Protocol parsing lives in ``protocol``, batching in the runtime's ``DynamicBatcher``; this
module maps routes to them, enforces limits, and turns every error a client can cause into a
4xx with ``{"error": ...}`` while the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InferenceError, InvalidInputError, UsageError
from ..runtime.batcher import BatcherClosedError, QueueFullError, RequestTimeoutError
from ..version import __version__
from .metrics import ServerMetrics
from .models import ServedModel
from .protocol import ProtocolError, encode_infer_response, parse_infer_request

PAGE_DIR = Path(__file__).parent / "page"
EXTENSIONS = ["binary_tensor_data", "statistics", "model_configuration", "schedule_policy"]
OFF_LOOP_BYTES = 256 << 10  # parse or encode larger bodies in a worker thread, not on the event loop
JSON_BYTES_PER_VALUE = 32  # generous: "-0.123456789012345678," is 22
access_log = logging.getLogger("capsdeploy.access")


@dataclass
class ServerState:
    models: dict[str, ServedModel]
    max_body_bytes: int = 64 << 20
    ready: bool = True
    draining: bool = False  # after SIGTERM: answer with `Connection: close` so clients reconnect
    metrics: ServerMetrics = field(init=False)

    def __post_init__(self):
        self.metrics = ServerMetrics(self.models)

    def observe_batch(self, model: str, batch) -> None:
        self.metrics.batch_size.labels(model).observe(batch.batch_size)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None, reason: str = "OTHER"):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.reason = reason  # Triton's failure reason: REJECTED, CANCELED, BACKEND, OTHER


async def run_batched(model: ServedModel, feeds: dict, timeout_s: float | None = None) -> dict:
    """The model's outputs for ``feeds`` through its batcher; batcher and engine failures become
    the HTTP error (and failure reason) every route answers with."""
    try:
        return await model.batcher.infer_async(feeds, timeout_s)
    except QueueFullError as e:
        raise HTTPError(503, str(e), {"retry-after": "1"}, "REJECTED") from None
    except RequestTimeoutError as e:
        raise HTTPError(504, str(e), reason="REJECTED") from None
    except BatcherClosedError as e:
        raise HTTPError(503, f"the server is shutting down: {e}", {"retry-after": "1"}, "REJECTED") from None
    except InferenceError as e:
        raise HTTPError(500, str(e), reason="BACKEND") from None


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# -- bodies ------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed (gzip, deflate), never more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"body of {declared} bytes exceeds the limit of {limit} (--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"body exceeds the limit of {limit} bytes (--max-body-mb)")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise HTTPError(501, f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
    # gzip: a gzip header; deflate: zlib's header (what tritonclient sends), raw deflate accepted too.
    wbits = (
        16 + zlib.MAX_WBITS
        if encoding == "gzip"
        else (zlib.MAX_WBITS if body[:1] == b"x" else -zlib.MAX_WBITS)
    )
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise HTTPError(400, f"body is not valid {encoding} data ({e})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise HTTPError(413, f"decompressed body exceeds the limit of {limit} bytes (--max-body-mb)")
    if not inflater.eof:
        raise HTTPError(400, f"body is truncated {encoding} data")
    if inflater.unused_data:
        raise HTTPError(400, f"{len(inflater.unused_data)} bytes follow the {encoding} data; send one stream")
    return out


def accepted_encodings(header: str) -> list[str]:
    """Codings from an Accept-Encoding header, best first; q=0 excludes one (RFC 9110)."""
    ranked = []
    for i, part in enumerate(header.split(",")):
        token, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for prm in params:
            name, _, value = prm.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if token and q > 0:
            ranked.append((-q, i, token.lower()))
    return [t for _, _, t in sorted(ranked)]


def compress_for(request: Request, body: bytes, headers: dict) -> bytes:
    headers["vary"] = "Accept-Encoding"
    for coding in accepted_encodings(request.headers.get("accept-encoding", "")):
        if coding == "gzip":
            headers["content-encoding"] = "gzip"
            return gzip.compress(body, compresslevel=1)
        if coding == "deflate":
            headers["content-encoding"] = "deflate"
            return zlib.compress(body, 1)
        if coding in ("identity", "*"):
            return body
    return body


async def multipart_file(request: Request, body: bytes, limit: int) -> bytes:
    """The `file` part of a multipart body already read (and size-checked) by read_body."""

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_part_size=limit).parse()
    except MultiPartException as e:
        raise HTTPError(400, f"bad multipart body: {e.message}") from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPError(400, "multipart upload needs a file field named `file`")
        return await upload.read()
    finally:
        await form.close()


# -- the application ------------------------------------------------------------
def create_app(state: ServerState, on_shutdown=None) -> Starlette:
    def model_of(request: Request) -> ServedModel:
        name = request.path_params["model"]
        model = state.models.get(name)
        if model is None:
            raise HTTPError(404, f"unknown model {name!r}; this server serves {sorted(state.models)}")
        version = request.path_params.get("version")
        if version is not None and version != model.version:
            raise HTTPError(404, f"model {name!r} has no version {version!r} (served: {model.version})")
        return model

    async def live(request):
        return Response(status_code=200)

    async def ready(request):
        return Response(status_code=200 if state.ready else 503)

    async def server_metadata(request):
        return JSONResponse({"name": "capsdeploy", "version": __version__, "extensions": EXTENSIONS})

    async def model_metadata(request):
        return JSONResponse(model_of(request).metadata())

    async def model_ready(request):
        model_of(request)
        return Response(status_code=200 if state.ready else 503)

    async def model_config(request):
        return JSONResponse(model_of(request).config_json)

    async def model_stats(request):
        chosen = [model_of(request)] if "model" in request.path_params else list(state.models.values())
        return JSONResponse({"model_stats": [m.stats.to_dict() for m in chosen]})

    async def repository_index(request):
        return JSONResponse(
            [{"name": m.name, "version": m.version, "state": "READY"} for m in state.models.values()]
        )

    async def infer(request: Request):
        t0 = time.perf_counter()
        model = model_of(request)
        outcome, reason = "error", "OTHER"
        try:
            body = await read_body(request, state.max_body_bytes)
            t_parse = time.perf_counter()
            header_length = request.headers.get("inference-header-content-length")
            json_len = int(header_length) if header_length and header_length.isdigit() else len(body)
            json_cap = 65536 + model.max_rows * sum(i.row_numel for i in model.inputs) * JSON_BYTES_PER_VALUE
            if json_len > json_cap:
                raise HTTPError(
                    413,
                    f"a JSON request of {json_len} bytes is more than {model.name} can need ({json_cap}); "
                    "send tensors as binary data (binary_data_size)",
                )
            args = (body, header_length, model.inputs, model.output_names, model.max_rows)
            if len(body) > OFF_LOOP_BYTES:  # keep health checks answering while a big body parses
                req = await run_in_threadpool(parse_infer_request, *args)
            else:
                req = parse_infer_request(*args)
            request.state.request_id = req.id
            decode_s = time.perf_counter() - t_parse
            results = await run_batched(model, req.inputs, model.timeout_s(req.timeout_us))
            t_enc = time.perf_counter()
            if req.rows > 64:
                payload, headers = await run_in_threadpool(
                    encode_infer_response, model.name, model.version, req, results
                )
            else:
                payload, headers = encode_infer_response(model.name, model.version, req, results)
            payload = compress_for(request, payload, headers)
            encode_s = time.perf_counter() - t_enc
            outcome = "success"
            elapsed = time.perf_counter() - t0
            model.stats.record_request(True, elapsed, decode_s, encode_s)
            return Response(payload, headers=headers)
        except HTTPError as e:
            reason = e.reason
            raise
        except asyncio.CancelledError:  # the client went away
            reason = "CANCELED"
            raise
        except (ProtocolError, InvalidInputError) as e:
            status = getattr(e, "status", 400)
            raise HTTPError(status, getattr(e, "message", str(e))) from None
        finally:
            elapsed = time.perf_counter() - t0
            if outcome != "success":
                model.stats.record_request(False, elapsed, reason=reason)
            state.metrics.request_latency.labels(model.name, outcome).observe(elapsed)

    async def predict_image(request: Request):
        """A PNG/JPEG (raw body or multipart `file`) -> top classes with capsule lengths."""
        from ..data.preprocess import decode_image, prepare_batch

        model = state.models.get("capsnet") or next(iter(state.models.values()))
        meta = model.backend.metadata
        if meta is None:
            raise HTTPError(400, f"model {model.name!r} carries no capsdeploy metadata; use the V2 protocol")
        data = await read_body(request, state.max_body_bytes)  # the body limit holds for multipart too
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            data = await multipart_file(request, data, state.max_body_bytes)
        if not data:
            raise HTTPError(400, "empty body: send a PNG or JPEG image")
        spec = model.inputs[0]
        channels, size = spec.dims[0], spec.dims[1]
        invert = request.query_params.get("invert", "false").lower() in ("1", "true", "yes")
        try:
            top = max(1, min(int(request.query_params.get("top", 3)), len(meta.class_names)))
        except ValueError:
            raise HTTPError(400, "`top` must be an integer") from None
        try:
            pixels = await run_in_threadpool(decode_image, data, channels, size, invert)
        except UsageError as e:
            raise HTTPError(400, str(e)) from None
        x = prepare_batch(pixels[None], meta.input_dtype, meta.normalization)
        out = await run_batched(model, {spec.name: x})
        scores = np.asarray(out["scores"][0], dtype=np.float64)
        order = np.argsort(-scores)[:top]
        return JSONResponse(
            {
                "model_name": model.name,
                "model_version": model.version,
                "predictions": [
                    {"class": meta.class_names[i], "index": int(i), "capsule_length": float(scores[i])}
                    for i in order
                ],
                "capsule_lengths": scores.tolist(),
            }
        )

    async def metrics(request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def page(request):
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/stats", model_stats),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
    ]
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        routes += [
            Route(prefix, model_metadata),
            Route(prefix + "/ready", model_ready),
            Route(prefix + "/config", model_config),
            Route(prefix + "/stats", model_stats),
            Route(prefix + "/infer", infer, methods=["POST"]),
        ]
    routes += [
        Route("/v1/predict", predict_image, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/", page),
        Mount("/static", StaticFiles(directory=PAGE_DIR), name="static"),
    ]

    async def http_error(request, exc: HTTPError):
        return error(exc.status, exc.message, exc.headers)

    async def starlette_error(request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def internal(request, exc):
        logging.getLogger("capsdeploy.serve").exception("unhandled error on %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if on_shutdown is not None:  # after uvicorn has let accepted requests finish
            await asyncio.get_running_loop().run_in_executor(None, on_shutdown)

    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPError: http_error,
            StarletteHTTPException: starlette_error,
            Exception: internal,
        },
        lifespan=lifespan,
    )
    app.state.server = state
    return AccessLog(app, state)


class AccessLog:
    """ASGI middleware: one line per request with its id, status and duration."""

    def __init__(self, app, state: ServerState | None = None):
        self.app = app
        self.state = state

    def __getattr__(self, name):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 0}
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1") or uuid.uuid4().hex[:16]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                extra = [(b"x-request-id", rid.encode("latin-1"))]
                if self.state is not None and self.state.draining:
                    extra.append((b"connection", b"close"))  # shutting down: reconnect elsewhere
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            access_log.info(
                json.dumps(
                    {
                        "request_id": rid,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status["code"],
                        "v2_id": (scope.get("state") or {}).get("request_id"),
                        "ms": round((time.perf_counter() - t0) * 1e3, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    }
                )
            )
