"""The gRPC front end: Triton's ``inference.GRPCInferenceService``, from the generated modules
that ship in ``tritonclient.grpc`` (service_pb2, service_pb2_grpc, model_config_pb2), over the
same dataplane as HTTP and in the same event loop.

It is a codec and nothing more: a ``ModelInferRequest`` becomes the same request document the
HTTP codec builds (``protocol.request_from_doc`` does every check for both), results become
raw output contents. ``ServeError``'s HTTP status maps to the gRPC code Triton uses for the
same error. ModelStreamInfer answers each request of the stream as it completes, with errors
in ``error_message`` (the stream stays open), as Triton's non-decoupled models do.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from ..repository.dtypes import NP_TO_V2
from .dataplane import DataPlane, ServeError
from .protocol import OutputRequest, ProtocolError, request_from_doc, write_shm_output
from .shm import SharedMemoryError, cuda_register_refused

log = logging.getLogger("capsdeploy.serve")

STATUS_TO_CODE = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Triton's typed contents: which InferTensorContents field holds each datatype.
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def grpc_code(status: int) -> grpc.StatusCode:
    return STATUS_TO_CODE.get(
        status, grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL
    )


def _param_value(p):
    kind = p.WhichOneof("parameter_choice")
    return None if kind is None else getattr(p, kind)


def _params(mapping) -> dict:
    return {k: _param_value(v) for k, v in mapping.items()}


def request_doc(request) -> tuple[dict, list]:
    """The V2 request document and per-input raw bytes of a ModelInferRequest."""
    inputs = []
    for t in request.inputs:
        item = {
            "name": t.name,
            "datatype": t.datatype,
            "shape": list(t.shape),
            "parameters": _params(t.parameters),
        }
        if t.HasField("contents"):
            field = CONTENTS_FIELD.get(t.datatype)
            if field is None:
                raise ProtocolError(
                    f"input {t.name!r}: {t.datatype} has no typed contents; send raw_input_contents"
                )
            item["data"] = list(getattr(t.contents, field))
        inputs.append(item)
    raws = list(request.raw_input_contents)
    if raws and len(raws) != len(inputs):
        raise ProtocolError(
            f"raw_input_contents holds {len(raws)} tensors for {len(inputs)} inputs; give one per input"
        )
    doc = {
        "id": request.id or None,
        "parameters": _params(request.parameters),
        "inputs": inputs,
        "outputs": [{"name": o.name, "parameters": _params(o.parameters)} for o in request.outputs] or None,
    }
    return doc, raws or [None] * len(inputs)


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane):
        self.plane = plane

    # -- health and metadata ----------------------------------------------
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.plane.ready)

    async def ModelReady(self, request, context):
        try:
            return pb.ModelReadyResponse(ready=self.plane.model_ready(request.name, request.version))
        except ServeError:
            return pb.ModelReadyResponse(ready=False)  # Triton: an unknown model is not ready

    async def ServerMetadata(self, request, context):
        meta = self.plane.server_metadata()
        return pb.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    async def ModelMetadata(self, request, context):
        model = await self._model(request, context)
        meta = model.metadata()
        return json_format.ParseDict(meta, pb.ModelMetadataResponse())

    async def ModelConfig(self, request, context):
        model = await self._model(request, context)
        return pb.ModelConfigResponse(config=model.normalized_config)

    async def ModelStatistics(self, request, context):
        try:
            stats = self.plane.statistics(request.name or None, request.version or None)
        except ServeError as e:
            await context.abort(grpc_code(e.status), e.message)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

    async def RepositoryIndex(self, request, context):
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**m) for m in self.plane.repository_index()]
        )

    async def _model(self, request, context):
        try:
            return self.plane.model(request.name, request.version or None)
        except ServeError as e:
            await context.abort(grpc_code(e.status), e.message)

    # -- inference ----------------------------------------------------------
    async def _infer(self, request) -> pb.ModelInferResponse:
        """One request through the dataplane; raises ServeError."""
        model = self.plane.model(request.model_name, request.model_version or None)
        async with self.plane.inference(model) as call:
            doc, raws = request_doc(request)
            req = request_from_doc(
                doc, raws, model.inputs, model.output_names, model.max_rows, self.plane.shm
            )
            results = await call.run(req)
            return self._response(model, request.id, req, results)

    def _response(self, model, request_id: str, req, results: dict) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=request_id)
        for o in req.outputs or [OutputRequest(n, None) for n in results]:
            arr = np.ascontiguousarray(results[o.name])
            response.outputs.add(name=o.name, datatype=NP_TO_V2[arr.dtype.name], shape=list(arr.shape))
            if o.shm is not None:
                # As Triton: the bytes go to the region, and an empty raw content keeps
                # raw_output_contents aligned with outputs (its allocator adds one per output).
                write_shm_output(self.plane.shm, o.shm, arr, f"output {o.name!r}")
                response.raw_output_contents.append(b"")
            else:
                response.raw_output_contents.append(
                    arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
                )
        return response

    async def ModelInfer(self, request, context):
        try:
            return await self._infer(request)
        except ServeError as e:
            await context.abort(grpc_code(e.status), e.message)

    async def ModelStreamInfer(self, request_iterator, context):
        """Each request runs as it arrives; responses go back as they complete."""
        done: asyncio.Queue = asyncio.Queue()
        pending: set[asyncio.Task] = set()

        async def one(request):
            try:
                response = pb.ModelStreamInferResponse(infer_response=await self._infer(request))
                final = request.parameters.get("triton_enable_empty_final_response")
                if final is not None and final.bool_param:  # one response per request: it is the final
                    response.infer_response.parameters["triton_final_response"].bool_param = True
            except ServeError as e:
                response = pb.ModelStreamInferResponse(
                    error_message=e.message, infer_response=pb.ModelInferResponse(id=request.id)
                )
            except Exception as e:  # never leave the stream waiting for an answer that cannot come
                log.exception("stream request failed")
                response = pb.ModelStreamInferResponse(
                    error_message=f"internal error: {type(e).__name__}",
                    infer_response=pb.ModelInferResponse(id=request.id),
                )
            await done.put(response)

        async def read():
            async for request in request_iterator:
                task = asyncio.ensure_future(one(request))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await done.put(None)  # the client closed its side

        reader = asyncio.ensure_future(read())
        try:
            closed = False
            while not (closed and not pending and done.empty()):
                item = await done.get()
                if item is None:
                    closed = True
                    continue
                yield item
        finally:
            reader.cancel()
            for task in pending:
                task.cancel()

    # -- shared memory ------------------------------------------------------
    async def SystemSharedMemoryStatus(self, request, context):
        try:
            regions = self.plane.shm.status(request.name or None)
        except SharedMemoryError as e:
            await context.abort(grpc_code(e.status), e.message)
        response = pb.SystemSharedMemoryStatusResponse()
        for r in regions:
            response.regions[r["name"]].CopyFrom(pb.SystemSharedMemoryStatusResponse.RegionStatus(**r))
        return response

    async def SystemSharedMemoryRegister(self, request, context):
        try:
            self.plane.shm.register(request.name, request.key, request.offset, request.byte_size)
        except SharedMemoryError as e:
            await context.abort(grpc_code(e.status), e.message)
        return pb.SystemSharedMemoryRegisterResponse()

    async def SystemSharedMemoryUnregister(self, request, context):
        self.plane.shm.unregister(request.name or None)
        return pb.SystemSharedMemoryUnregisterResponse()

    async def CudaSharedMemoryStatus(self, request, context):
        if request.name:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"Unable to find cuda shared memory region: {request.name!r}"
            )
        return pb.CudaSharedMemoryStatusResponse()

    async def CudaSharedMemoryRegister(self, request, context):
        e = cuda_register_refused(request.name)
        await context.abort(grpc_code(e.status), e.message)

    async def CudaSharedMemoryUnregister(self, request, context):
        return pb.CudaSharedMemoryUnregisterResponse()  # nothing is ever registered


class GrpcFrontEnd:
    """A grpc.aio server over ``plane``, started and stopped in the HTTP server's event loop."""

    def __init__(self, plane: DataPlane, host: str, port: int):
        self.plane, self.host, self.port = plane, host, port
        self.server: grpc.aio.Server | None = None
        self.bound_port: int | None = None
        self._stopping: asyncio.Task | None = None

    async def start(self) -> int:
        limit = self.plane.max_body_bytes  # --max-body-mb holds for gRPC messages too
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", max(limit, 64 << 20)),
                ("grpc.so_reuseport", 0),  # a taken port is an error, not a shared listener
            ]
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(self.plane), self.server)
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            self.bound_port = self.server.add_insecure_port(address)
        except RuntimeError as e:
            raise OSError(f"cannot listen for gRPC on {address} ({e}); choose another --grpc-port") from None
        await self.server.start()
        return self.bound_port

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs; let those in flight finish within ``grace`` seconds. Safe to call
        again: later calls wait for the first."""
        if self.server is None:
            return
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.server.stop(grace))
        await asyncio.shield(self._stopping)
