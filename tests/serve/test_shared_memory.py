"""System shared memory as Triton's extension defines it, driven by tritonclient's own
helpers (tritonclient.utils.shared_memory) over HTTP and gRPC: register, status, inputs and
outputs through regions with offsets, every access bounds-checked, unregister one or all; CUDA
shared memory: status empty, unregister-all succeeds, register refused."""

import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.helpers.serving import INFER, request

X_BYTES = 4 * 1 * 28 * 28 * 4  # four digits, FP32
SCORES_BYTES = 4 * 10 * 4


@pytest.fixture
def regions():
    """An input region holding four rows after a 64-byte offset, and an output region."""
    x = np.random.default_rng(7).random((4, 1, 28, 28), dtype=np.float32)
    inp = shm.create_shared_memory_region("in_region", "/capsdeploy_test_in", 64 + X_BYTES)
    out = shm.create_shared_memory_region("out_region", "/capsdeploy_test_out", 64 + SCORES_BYTES)
    shm.set_shared_memory_region(inp, [x], offset=64)
    yield x, inp, out
    shm.destroy_shared_memory_region(inp)
    shm.destroy_shared_memory_region(out)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_shared_memory_round_trip(server, regions, transport):
    x, inp, out = regions
    mod = httpclient if transport == "http" else grpcclient
    c = mod.InferenceServerClient(server.host_port if transport == "http" else server.grpc_host_port)
    c.unregister_system_shared_memory()
    c.register_system_shared_memory("in_region", "/capsdeploy_test_in", 64 + X_BYTES)
    c.register_system_shared_memory("out_region", "/capsdeploy_test_out", SCORES_BYTES, offset=64)
    status = c.get_system_shared_memory_status(**({"as_json": True} if transport == "grpc" else {}))
    names = {r["name"] for r in status} if transport == "http" else set(status["regions"])
    assert names == {"in_region", "out_region"}
    try:
        i = mod.InferInput("image", list(x.shape), "FP32")
        i.set_shared_memory("in_region", X_BYTES, offset=64)
        o = mod.InferRequestedOutput("scores")
        o.set_shared_memory("out_region", SCORES_BYTES)
        r = c.infer("capsnet", [i], outputs=[o])
        assert r.get_output("scores") is not None
        got = shm.get_contents_as_numpy(out, np.float32, [4, 10], offset=64)
        # The same rows sent as ordinary binary data give the same scores.
        j = mod.InferInput("image", list(x.shape), "FP32")
        j.set_data_from_numpy(x)
        want = c.infer("capsnet", [j]).as_numpy("scores")
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)

        # Out of the registered range: a clear error, and the server keeps serving.
        k = mod.InferInput("image", list(x.shape), "FP32")
        k.set_shared_memory("in_region", X_BYTES, offset=128)
        with pytest.raises(InferenceServerException, match="Invalid offset"):
            c.infer("capsnet", [k])
        k.set_shared_memory("nope", X_BYTES)
        with pytest.raises(InferenceServerException, match="Unable to find shared memory region"):
            c.infer("capsnet", [k])
        small = mod.InferRequestedOutput("scores")
        small.set_shared_memory("out_region", 8)
        with pytest.raises(InferenceServerException, match="do not fit"):
            c.infer("capsnet", [i], outputs=[small])
        assert c.infer("capsnet", [j]).as_numpy("scores").shape == (4, 10)

        c.unregister_system_shared_memory("in_region")
        status = c.get_system_shared_memory_status(**({"as_json": True} if transport == "grpc" else {}))
        names = {r["name"] for r in status} if transport == "http" else set(status["regions"])
        assert names == {"out_region"}
    finally:
        c.unregister_system_shared_memory()
    status = c.get_system_shared_memory_status(**({"as_json": True} if transport == "grpc" else {}))
    assert not (status if transport == "http" else status.get("regions"))


def test_shared_memory_errors_over_http(server, regions):
    hp = server.host_port
    reg = "/v2/systemsharedmemory/region/r1/register"

    def post(path, doc):
        status, _, body = request(hp, "POST", path, json.dumps(doc).encode())
        return status, (json.loads(body)["error"] if body else "")

    status, msg = post(reg, {"key": "/capsdeploy_no_such_key", "offset": 0, "byte_size": 16})
    assert status == 400 and "Unable to open" in msg
    status, msg = post(reg, {"key": "/capsdeploy_test_in", "offset": 0, "byte_size": 10**9})
    assert status == 400 and "exceeds" in msg
    status, msg = post(reg, {"key": "/capsdeploy_test_in", "offset": -1, "byte_size": 16})
    assert status == 400 and "offset" in msg
    assert post(reg, {"key": "/capsdeploy_test_in", "offset": 0, "byte_size": 16})[0] == 200
    status, msg = post(reg, {"key": "/capsdeploy_test_in", "offset": 0, "byte_size": 16})
    assert status == 400 and "already" in msg
    status, _, body = request(hp, "GET", "/v2/systemsharedmemory/region/nope/status")
    assert status == 404
    assert request(hp, "POST", "/v2/systemsharedmemory/region/nope/unregister")[0] == 200  # Triton: no error
    assert request(hp, "POST", "/v2/systemsharedmemory/unregister")[0] == 200
    # An input naming a region but not its size.
    doc = {
        "inputs": [
            {
                "name": "image",
                "datatype": "FP32",
                "shape": [1, 1, 28, 28],
                "parameters": {"shared_memory_region": "r1"},
            }
        ]
    }
    status, _, body = request(hp, "POST", INFER, json.dumps(doc).encode())
    assert status == 400 and "shared_memory_byte_size" in json.loads(body)["error"]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_cuda_shared_memory_unregister_all_succeeds_and_register_is_refused(server, transport):
    mod = httpclient if transport == "http" else grpcclient
    c = mod.InferenceServerClient(server.host_port if transport == "http" else server.grpc_host_port)
    c.unregister_cuda_shared_memory()  # what perf_analyzer and Triton's clients do first
    status = c.get_cuda_shared_memory_status(**({"as_json": True} if transport == "grpc" else {}))
    assert not (status if transport == "http" else status.get("regions"))
    with pytest.raises(InferenceServerException, match="maps no GPU memory"):
        c.register_cuda_shared_memory("g", b"\0" * 64, 0, 64)


def test_grpc_duplicate_register_is_already_exists_and_offsets_past_the_region_are_refused(server, regions):
    """Triton: registering a taken name is ALREADY_EXISTS over gRPC; an offset at or past the
    region's end is "Invalid offset" even for a zero byte size."""
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_host_port)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    reg = pb.SystemSharedMemoryRegisterRequest(name="dup", key="/capsdeploy_test_out", offset=0, byte_size=16)
    try:
        stub.SystemSharedMemoryRegister(reg)
        with pytest.raises(grpc.RpcError) as e:
            stub.SystemSharedMemoryRegister(reg)
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "already" in e.value.details()
    finally:
        stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="dup"))
        channel.close()


def test_an_offset_at_the_end_of_the_region_is_invalid():
    from capsdeploy.serve.shm import Region, SharedMemoryError

    region = Region.__new__(Region)
    region.name, region.byte_size = "r", 64
    region.check(63, 1, "output")
    with pytest.raises(SharedMemoryError, match="Invalid offset"):
        region.check(64, 0, "output")
