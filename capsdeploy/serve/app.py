"""The HTTP front end: KServe V2 as Triton speaks it, system shared memory, /v1/predict for
images, the page, /metrics.

Model lookup, inference, statistics and shared memory live in the transport-free ``dataplane``
(which the gRPC front end shares), protocol parsing in ``protocol``; this module maps routes to
them, enforces HTTP's limits (body size, encodings), and turns every ``ServeError`` into its
status with ``{"error": ...}`` while the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import logging
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import UsageError
from .dataplane import DataPlane, ServeError, off_loop
from .models import ServedModel
from .protocol import encode_infer_response, parse_infer_request
from .shm import SharedMemoryError, cuda_register_refused

PAGE_DIR = Path(__file__).parent / "page"
JSON_BYTES_PER_VALUE = 32  # generous: "-0.123456789012345678," is 22
access_log = logging.getLogger("capsdeploy.access")

# The front ends share one dataplane; the old names stay for callers of this module.
ServerState = DataPlane


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# -- bodies ------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed (gzip, deflate), never more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ServeError(413, f"body of {declared} bytes exceeds the limit of {limit} (--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServeError(413, f"body exceeds the limit of {limit} bytes (--max-body-mb)")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ServeError(501, f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
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
        raise ServeError(400, f"body is not valid {encoding} data ({e})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ServeError(413, f"decompressed body exceeds the limit of {limit} bytes (--max-body-mb)")
    if not inflater.eof:
        raise ServeError(400, f"body is truncated {encoding} data")
    if inflater.unused_data:
        raise ServeError(400, f"{len(inflater.unused_data)} bytes follow the {encoding} data; send one stream")
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
        raise ServeError(400, f"bad multipart body: {e.message}") from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServeError(400, "multipart upload needs a file field named `file`")
        return await upload.read()
    finally:
        await form.close()


# -- the application ------------------------------------------------------------
def create_app(state: DataPlane, on_shutdown=None, on_startup=None, on_stopping=None) -> AccessLog:
    """The HTTP app. ``on_startup`` / ``on_stopping``: coroutines run in the server's event loop
    as it starts and once it has stopped taking HTTP requests (the gRPC front end lives there);
    ``on_shutdown``: a blocking call after that (draining the batchers)."""
    plane = state

    def model_of(request: Request) -> ServedModel:
        return plane.model(request.path_params["model"], request.path_params.get("version"))

    async def live(request):
        return Response(status_code=200)

    async def ready(request):
        return Response(status_code=200 if plane.ready else 503)

    async def server_metadata(request):
        return JSONResponse(plane.server_metadata())

    async def model_metadata(request):
        return JSONResponse(model_of(request).metadata())

    async def model_ready(request):
        ready = plane.model_ready(request.path_params["model"], request.path_params.get("version"))
        return Response(status_code=200 if ready else 503)

    async def model_config(request):
        return JSONResponse(model_of(request).config_json)

    async def model_stats(request):
        return JSONResponse(plane.statistics(*_name_version(request)))

    async def repository_index(request):
        return JSONResponse(plane.repository_index())

    async def infer(request: Request):
        model = model_of(request)
        async with plane.inference(model) as call:
            body = await read_body(request, plane.max_body_bytes)
            header_length = request.headers.get("inference-header-content-length")
            json_len = int(header_length) if header_length and header_length.isdigit() else len(body)
            json_cap = 65536 + model.max_rows * sum(i.row_numel for i in model.inputs) * JSON_BYTES_PER_VALUE
            if json_len > json_cap:
                raise ServeError(
                    413,
                    f"a JSON request of {json_len} bytes is more than {model.name} can need ({json_cap}); "
                    "send tensors as binary data (binary_data_size)",
                )
            args = (body, header_length, model.inputs, model.output_names, model.max_rows, plane.shm)
            req = await off_loop(len(body), parse_infer_request, *args)
            request.state.request_id = req.id
            results = await call.run(req)
            enc = (model.name, model.version, req, results, plane.shm)
            if req.rows > 64:
                payload, headers = await run_in_threadpool(encode_infer_response, *enc)
            else:
                payload, headers = encode_infer_response(*enc)
            payload = compress_for(request, payload, headers)
        return Response(payload, headers=headers)

    async def predict_image(request: Request):
        """A PNG/JPEG (raw body or multipart `file`) -> top classes with capsule lengths."""
        from ..data.preprocess import decode_image, prepare_batch

        model = plane.models.get("capsnet") or next(iter(plane.models.values()))
        meta = model.backend.metadata
        if meta is None:
            raise ServeError(400, f"model {model.name!r} carries no capsdeploy metadata; use the V2 protocol")
        # Counted in the model's statistics like any inference request.
        async with plane.inference(model) as call:
            data = await read_body(request, plane.max_body_bytes)  # the limit holds for multipart too
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                data = await multipart_file(request, data, plane.max_body_bytes)
            if not data:
                raise ServeError(400, "empty body: send a PNG or JPEG image")
            spec = model.inputs[0]
            channels, size = spec.dims[0], spec.dims[1]
            invert = request.query_params.get("invert", "false").lower() in ("1", "true", "yes")
            try:
                top = max(1, min(int(request.query_params.get("top", 3)), len(meta.class_names)))
            except ValueError:
                raise ServeError(400, "`top` must be an integer") from None
            try:
                pixels = await run_in_threadpool(decode_image, data, channels, size, invert)
            except UsageError as e:
                raise ServeError(400, str(e)) from None
            x = prepare_batch(pixels[None], meta.input_dtype, meta.normalization)
            out = await call.run_feeds({spec.name: x})
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

    # -- shared memory (Triton's extension; the regions live in the dataplane) --
    async def shm_status(request):
        return JSONResponse(plane.shm.status(request.path_params.get("region")))

    async def shm_register(request):
        doc = await _json_object(request, plane.max_body_bytes)
        plane.shm.register(
            request.path_params["region"], doc.get("key"), doc.get("offset", 0), doc.get("byte_size")
        )
        return Response(status_code=200)

    async def shm_unregister(request):
        plane.shm.unregister(request.path_params.get("region"))
        return Response(status_code=200)

    async def cuda_shm_status(request):
        region = request.path_params.get("region")
        if region is not None:
            raise ServeError(404, f"Unable to find cuda shared memory region: {region!r}")
        return JSONResponse([])

    async def cuda_shm_register(request):
        raise cuda_register_refused(request.path_params["region"])

    async def cuda_shm_unregister(request):
        return Response(status_code=200)  # nothing is ever registered

    async def metrics(request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def page(request):
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    routes: list[BaseRoute] = [
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
    for kind, status, register, unregister in (
        ("system", shm_status, shm_register, shm_unregister),
        ("cuda", cuda_shm_status, cuda_shm_register, cuda_shm_unregister),
    ):
        base = f"/v2/{kind}sharedmemory"
        routes += [
            Route(base + "/status", status),
            Route(base + "/region/{region}/status", status),
            Route(base + "/region/{region}/register", register, methods=["POST"]),
            Route(base + "/unregister", unregister, methods=["POST"]),
            Route(base + "/region/{region}/unregister", unregister, methods=["POST"]),
        ]
    routes += [
        Route("/v1/predict", predict_image, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/", page),
        Mount("/static", StaticFiles(directory=PAGE_DIR), name="static"),
    ]

    async def http_error(request, exc: ServeError):
        return error(exc.status, exc.message, exc.headers)

    async def shm_error(request, exc: SharedMemoryError):
        return error(exc.status, exc.message)

    async def starlette_error(request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def internal(request, exc):
        logging.getLogger("capsdeploy.serve").exception("unhandled error on %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if on_startup is not None:
            await on_startup()
        yield
        if on_stopping is not None:
            await on_stopping()
        if on_shutdown is not None:  # after uvicorn has let accepted requests finish
            await asyncio.get_running_loop().run_in_executor(None, on_shutdown)

    # Each handler takes its own exception type: starlette's annotation (any Exception) is wider.
    handlers: dict[Any, Callable[..., Any]] = {
        ServeError: http_error,
        SharedMemoryError: shm_error,
        StarletteHTTPException: starlette_error,
        Exception: internal,
    }
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.server = state
    return AccessLog(app, state)


def _name_version(request: Request) -> tuple[str | None, str | None]:
    """(model, version) of a route; the model is None on /v2/models/stats (every model)."""
    return request.path_params.get("model"), request.path_params.get("version")


async def _json_object(request: Request, limit: int) -> dict:
    body = await read_body(request, limit)
    try:
        doc = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ServeError(400, f"the body is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ServeError(400, "the body must be a JSON object")
    return doc


class AccessLog:
    """ASGI middleware: every response carries an ``x-request-id`` (the client's own, else one made
    here), and one JSON line per request with its id, status and duration goes to the
    ``capsdeploy.access`` log when that log is on (``--log-level info``)."""

    def __init__(self, app, state: ServerState | None = None):
        self.app = app
        self.state = state
        # Ids unique across replicas and restarts without a uuid4 (an os.urandom read) per request:
        # a random prefix per process, then a counter.
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)

    def __getattr__(self, name):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 0}
        rid = ""
        for key, value in scope.get("headers") or ():
            if key == b"x-request-id":
                rid = value.decode("latin-1")
        rid = rid or f"{self._prefix}{next(self._ids):08x}"

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = [(b"x-request-id", rid.encode("latin-1"))]
                if self.state is not None and self.state.draining:
                    extra.append((b"connection", b"close"))  # shutting down: reconnect elsewhere
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # A line nobody reads would still cost the event loop its formatting on every request.
            if access_log.isEnabledFor(logging.INFO):
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
