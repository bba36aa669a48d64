"""KServe V2 inference requests and responses as Triton speaks them, HTTP-free.

JSON tensors (flat or nested) and the binary tensor data extension: an
``Inference-Header-Content-Length`` JSON prefix followed by the tensors' raw
little-endian bytes in the order the JSON names them, or (length 0) a raw body
holding the model's single input as one batch row, and tensors in registered shared memory
regions. The gRPC codec builds the same document from its protobuf and shares every check
(``request_from_doc``). Every way a request can be wrong raises ``ProtocolError`` with the
HTTP status and a message saying what to fix. Non-finite values pass (as in Triton); a model
may refuse them (the dataplane's check).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..repository.dtypes import NP_TO_V2

if TYPE_CHECKING:  # imported lazily at run time, as _shm_call does
    from .shm import Region

MAX_TIMEOUT_US = 2**64 - 1  # Triton reads the timeout as a uint64 of microseconds


class ProtocolError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str  # numpy name
    dims: tuple[int, ...]  # without the batch dimension (when batched); -1 is free
    batched: bool = True  # Triton's max_batch_size > 0: requests carry a leading batch axis

    @property
    def row_numel(self) -> int:
        return math.prod(max(d, 1) for d in self.dims)


@dataclass(frozen=True)
class ShmRef:
    region: str
    offset: int
    byte_size: int
    # An output's Region, resolved when the request is parsed: the bytes go there even if the
    # name is unregistered (or registered again) while the request runs.
    target: Region | None = None


@dataclass
class OutputRequest:
    name: str
    binary: bool | None  # None: the request's default
    shm: ShmRef | None = None  # write the output into this shared-memory range


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    rows: int
    outputs: list[OutputRequest] | None  # None: every output
    binary_output: bool  # the request-level default (binary_data_output)
    timeout_us: int | None
    parameters: dict = field(default_factory=dict)


def parse_infer_request(
    body: bytes,
    header_length: str | None,
    inputs: list[InputSpec],
    output_names: list[str],
    max_rows: int,
    shm=None,
) -> InferRequest:
    """Decode and check one HTTP request against the model's inputs; raise ProtocolError.
    ``shm``: the SharedMemoryRegistry that inputs and outputs may name regions of."""
    if not body:
        raise ProtocolError(
            "empty body: send a V2 inference request (JSON, optionally followed by binary tensors)"
        )
    if header_length is not None:
        try:
            hlen = int(header_length)
        except ValueError:
            raise ProtocolError(
                f"Inference-Header-Content-Length {header_length!r} is not an integer"
            ) from None
        if hlen < 0 or hlen > len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length {hlen} does not fit a body of {len(body)} bytes"
            )
        if hlen == 0:
            return _raw_request(body, inputs, output_names)
        header, blobs = body[:hlen], memoryview(body)[hlen:]
    else:
        header, blobs = body, memoryview(b"")
    try:
        doc = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the request is not valid JSON ({e}); send a V2 inference request") from None
    except RecursionError:
        raise ProtocolError("the request JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ProtocolError("the request must be a JSON object with an `inputs` list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("`inputs` must be a non-empty list")
    # The binary tensors follow the JSON in the order the inputs name them.
    raws: list[bytes | memoryview | None] = []
    offset = 0
    for i, item in enumerate(raw_inputs):
        params = item.get("parameters") if isinstance(item, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            raws.append(None)
            continue
        name = item.get("name", f"inputs[{i}]")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(
                f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}"
            )
        if offset + size > len(blobs):
            raise ProtocolError(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(blobs) - offset} bytes left)"
            )
        raws.append(blobs[offset : offset + size])
        offset += size
    if offset != len(blobs):
        raise ProtocolError(
            f"the body carries {len(blobs)} bytes after the JSON header but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    return request_from_doc(doc, raws, inputs, output_names, max_rows, shm)


def request_from_doc(
    doc: dict, raws: list, inputs: list[InputSpec], output_names: list[str], max_rows: int, shm=None
) -> InferRequest:
    """An InferRequest from a V2 request document (JSON, or built from gRPC's protobuf) and each
    input's raw bytes (``raws[i]``, None where the input has none): every check both transports
    share."""
    specs = {s.name: s for s in inputs}
    params = _dict(doc.get("parameters"), "parameters")
    _no_reserved(params, "parameters")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("`inputs` must be a non-empty list")
    arrays: dict[str, np.ndarray] = {}
    for i, item in enumerate(raw_inputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ProtocolError(f"inputs[{i}] must be an object with a `name`")
        name = item["name"]
        if name not in specs:
            raise ProtocolError(f"unknown input {name!r}; the model takes {sorted(specs)}")
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given twice")
        arrays[name] = _decode_tensor(item, specs[name], raws[i], shm, max_rows)
    missing = [n for n in specs if n not in arrays]
    if missing:
        raise ProtocolError(f"missing input(s) {missing}")
    rows = _rows(arrays, max_rows if all(sp.batched for sp in inputs) else None)
    outputs = _requested_outputs(doc.get("outputs"), output_names, shm)
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ProtocolError("`id` must be a string")
    return InferRequest(
        id=rid,
        inputs=arrays,
        rows=rows,
        outputs=outputs,
        binary_output=_bool(params.get("binary_data_output", False), "binary_data_output"),
        timeout_us=_timeout(params.get("timeout")),
        parameters=params,
    )


# The one `triton_` request parameter Triton itself takes (streaming clients, perf_analyzer).
TRITON_REQUEST_PARAMS = ("triton_enable_empty_final_response",)


def _no_reserved(params: dict, what: str) -> None:
    # Triton reserves the prefix for its own use and refuses other such request parameters.
    reserved = sorted(
        k for k in params if isinstance(k, str) and k.startswith("triton_") and k not in TRITON_REQUEST_PARAMS
    )
    if reserved:
        raise ProtocolError(
            f"{what}: {reserved} use the prefix 'triton_', reserved for Triton usage; rename them"
        )
    for k in TRITON_REQUEST_PARAMS:
        if k in params and not isinstance(params[k], bool):
            raise ProtocolError(f"{what}: invalid value type for {k!r}, expected a bool")


def _raw_request(body: bytes, inputs: list[InputSpec], output_names) -> InferRequest:
    """Header length 0: the body is the single input's bytes, one row (Triton: batch 1)."""
    if len(inputs) != 1 or any(d < 0 for d in inputs[0].dims):
        raise ProtocolError("a raw binary body (header length 0) needs a model with one fixed-shape input")
    spec = inputs[0]
    shape = [1, *spec.dims] if spec.batched else list(spec.dims)
    want = math.prod(shape) * np.dtype(spec.dtype).itemsize
    if len(body) != want:
        raise ProtocolError(
            f"a raw body (header length 0) is one {spec.name} of shape {shape}: {want} bytes of "
            f"{NP_TO_V2[spec.dtype]}, not {len(body)}; send batches with a JSON header"
        )
    arr = np.frombuffer(body, dtype=np.dtype(spec.dtype).newbyteorder("<")).astype(spec.dtype).reshape(shape)
    return InferRequest(None, {spec.name: arr}, shape[0] if spec.batched else 1, None, True, None)


def _decode_tensor(item: dict, spec: InputSpec, raw, shm, max_rows: int | None = None) -> np.ndarray:
    name = spec.name
    datatype = item.get("datatype")
    want = NP_TO_V2[spec.dtype]
    if datatype != want:
        raise ProtocolError(f"input {name!r}: datatype {datatype!r}, the model takes {want}")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ProtocolError(f"input {name!r}: `shape` must be a list of integers")
    if any(d < 0 for d in shape):
        raise ProtocolError(f"input {name!r}: negative dimension in shape {shape}")
    given = shape[1:] if spec.batched else shape
    if len(given) != len(spec.dims) or any(w != -1 and d != w for d, w in zip(given, spec.dims, strict=True)):
        want_shape = ["N"] * spec.batched + [d if d >= 0 else "?" for d in spec.dims]
        raise ProtocolError(f"input {name!r}: shape {shape} does not fit the model's {want_shape}")
    if spec.batched and max_rows is not None and shape and shape[0] > max_rows:
        # Before any bytes are read or values converted: the shape alone says it is too big.
        raise ProtocolError(
            f"input {name!r}: {shape[0]} rows in one request; this model takes at most {max_rows} (max_batch_size)"
        )
    count = math.prod(shape)
    params = _dict(item.get("parameters"), f"input {name!r} parameters")
    ref = _shm_ref(params, f"input {name!r}")
    given_sources = [
        s
        for s, on in (
            ("data", "data" in item),
            ("binary data", raw is not None),
            ("shared memory", ref is not None),
        )
        if on
    ]
    if len(given_sources) > 1:
        raise ProtocolError(f"input {name!r}: give its values once, not as {' and '.join(given_sources)}")
    dtype = np.dtype(spec.dtype)
    if ref is not None:
        if shm is None:
            raise ProtocolError(f"input {name!r}: shared memory is not available here")
        if ref.byte_size != count * dtype.itemsize:  # checked before a byte is copied
            raise ProtocolError(
                f"input {name!r}: shape {shape} needs {count * dtype.itemsize} bytes of {want}, "
                f"shared_memory_byte_size says {ref.byte_size}"
            )
        raw = _shm_call(shm.read, ref.region, ref.offset, ref.byte_size, f"input {name!r}")
        size_what = "shared_memory_byte_size"
    else:
        size_what = "binary_data_size"
    if raw is not None:
        size = len(raw)
        if size != count * dtype.itemsize:
            raise ProtocolError(
                f"input {name!r}: shape {shape} needs {count * dtype.itemsize} bytes of {want}, "
                f"{size_what} says {size}"
            )
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=True).reshape(shape)
    if "data" not in item:
        raise ProtocolError(
            f"input {name!r}: give `data`, parameters.binary_data_size or a shared memory region"
        )
    if spec.dtype == "float16":
        raise ProtocolError(
            f"input {name!r}: FP16 has no JSON form; send it as binary data (binary_data_size)"
        )
    data = item["data"]
    if isinstance(data, list) and data and not isinstance(data[0], list) and len(data) != count:
        # A flat list of the wrong length: say so before converting it (it may be huge).
        raise ProtocolError(f"input {name!r}: shape {shape} holds {count} values, `data` has {len(data)}")
    arr = _json_array(data, name, spec.dtype)
    if arr.size != count:
        raise ProtocolError(f"input {name!r}: shape {shape} holds {count} values, `data` has {arr.size}")
    return arr.reshape(shape)


def _shm_ref(params: dict, what: str) -> ShmRef | None:
    region = params.get("shared_memory_region")
    if region is None:
        for k in ("shared_memory_byte_size", "shared_memory_offset"):
            if k in params:
                raise ProtocolError(f"{what}: {k} without shared_memory_region")
        return None
    if not isinstance(region, str):
        raise ProtocolError(f"{what}: shared_memory_region must be a string")
    if "shared_memory_byte_size" not in params:
        raise ProtocolError(f"{what}: shared_memory_region needs shared_memory_byte_size")
    size, offset = params["shared_memory_byte_size"], params.get("shared_memory_offset", 0)
    for k, v in (("shared_memory_byte_size", size), ("shared_memory_offset", offset)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ProtocolError(f"{what}: {k} must be a non-negative integer, got {v!r}")
    return ShmRef(region, offset, size)


def _shm_call(fn, *args):
    from .shm import SharedMemoryError

    try:
        return fn(*args)
    except SharedMemoryError as e:
        raise ProtocolError(e.message) from None


def le_bytes(arr: np.ndarray) -> bytes:
    """The tensor's raw little-endian bytes, as the wire carries them."""
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def response_outputs(request: InferRequest, results: dict[str, np.ndarray]):
    """Each output the request asked for (all when it named none) with its array, in order;
    those bound to shared memory are written into the region the request resolved (both
    transports' encoders start here)."""
    for o in request.outputs or [OutputRequest(n, None) for n in results]:
        arr = np.ascontiguousarray(results[o.name])
        if o.shm is not None:
            assert o.shm.target is not None  # _requested_outputs resolved it
            _shm_call(o.shm.target.write, o.shm.offset, o.shm.byte_size, le_bytes(arr), f"output {o.name!r}")
        yield o, arr


def _json_array(data, name: str, dtype: str) -> np.ndarray:
    try:
        raw = np.asarray(data)
    except ValueError:
        raise ProtocolError(f"input {name!r}: `data` is a ragged nested list") from None
    except RecursionError:
        raise ProtocolError(f"input {name!r}: `data` is nested too deeply") from None
    if raw.dtype == object or raw.dtype.kind not in "biuf":
        raise ProtocolError(f"input {name!r}: `data` must hold numbers only")
    target = np.dtype(dtype)
    if target.kind in "iu":
        if raw.dtype.kind == "f" and raw.size and not np.all(np.mod(raw, 1) == 0):
            raise ProtocolError(f"input {name!r}: {NP_TO_V2[dtype]} data must be integers")
        info = np.iinfo(target)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise ProtocolError(
                f"input {name!r}: values outside {NP_TO_V2[dtype]}'s range {info.min}..{info.max}"
            )
    return raw.astype(target).reshape(-1)


def _rows(arrays: dict[str, np.ndarray], max_rows: int | None) -> int:
    counts = {n: a.shape[0] for n, a in arrays.items()}
    if len(set(counts.values())) > 1:
        raise ProtocolError(f"inputs disagree on the batch size: {counts}")
    rows = next(iter(counts.values()))
    if rows < 1:
        raise ProtocolError("the batch is empty (first dimension 0)")
    if max_rows is not None and rows > max_rows:
        raise ProtocolError(
            f"{rows} rows in one request; this model takes at most {max_rows} (max_batch_size)"
        )
    return rows


def _requested_outputs(raw, output_names: list[str], shm=None) -> list[OutputRequest] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ProtocolError("`outputs` must be a list")
    out, seen = [], set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ProtocolError(f"outputs[{i}] must be an object with a `name`")
        name = item["name"]
        if name not in output_names:
            raise ProtocolError(f"unknown output {name!r}; the model returns {output_names}")
        if name in seen:
            raise ProtocolError(f"output {name!r} is requested twice")
        seen.add(name)
        params = _dict(item.get("parameters"), f"output {name!r} parameters")
        ref = _shm_ref(params, f"output {name!r}")
        if ref is not None and shm is None:
            raise ProtocolError(f"output {name!r}: shared memory is not available here")
        if ref is not None:  # the region must exist and hold the range now, not after the batch ran
            target = _shm_call(shm.resolve, ref.region, ref.offset, ref.byte_size, f"output {name!r}")
            ref = ShmRef(ref.region, ref.offset, ref.byte_size, target)
        if "classification" in params:
            raise ProtocolError(
                f"output {name!r}: the classification extension is not supported; request the scores "
                "(capsule lengths) and take the top classes client-side, or use /v1/predict"
            )
        binary = params.get("binary_data")
        out.append(OutputRequest(name, None if binary is None else _bool(binary, "binary_data"), ref))
    return out


def _dict(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _bool(value, what: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{what} must be true or false")
    return value


def _timeout(value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > MAX_TIMEOUT_US:
        raise ProtocolError(f"timeout must be microseconds in 0..2^64-1 (uint64), got {value!r}")
    return value or None  # 0: no timeout of its own (Triton's meaning); the queue policy's applies


def encode_infer_response(
    model: str,
    version: str,
    request: InferRequest,
    results: dict[str, np.ndarray],
    shm=None,
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (binary outputs after a JSON header when asked for;
    outputs bound to shared memory written there and listed without data)."""
    outputs, blobs = [], []
    for o, arr in response_outputs(request, results):
        entry = {"name": o.name, "datatype": NP_TO_V2[arr.dtype.name], "shape": list(arr.shape)}
        # A shared-memory output is answered as Triton answers it: name, datatype and shape only
        # (Triton's C++ client reads any output `parameters` as binary data).
        if o.shm is None and (o.binary if o.binary is not None else request.binary_output):
            raw = le_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        elif o.shm is None:
            entry["data"] = arr.reshape(-1).tolist()
        outputs.append(entry)
    doc = {"model_name": model, "model_version": version, "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }

