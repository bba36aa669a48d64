"""The shared-memory registry against clients that misbehave: an object shrunk after
registration, a key that is a symlink, keys that are not object names, byte sizes that the
request's shape contradicts, and regions unregistered while a request that writes to them runs.
None of these may crash the server, reach a file outside /dev/shm, or copy more than the
request can need."""

import gc
import os
import subprocess
import sys
import textwrap
import uuid
import weakref

import numpy as np
import pytest

from capsdeploy.serve.protocol import (
    InputSpec,
    OutputRequest,
    ProtocolError,
    encode_infer_response,
    request_from_doc,
)
from capsdeploy.serve.shm import SharedMemoryError, SharedMemoryRegistry


@pytest.fixture
def shm_object():
    key = f"/capsdeploy_safety_{uuid.uuid4().hex[:8]}"
    path = "/dev/shm" + key
    with open(path, "wb") as f:
        f.write(b"\1" * (1 << 20))
    yield key, path
    if os.path.lexists(path):
        os.unlink(path)


def test_a_shrunk_object_is_a_clear_error_not_a_crash(shm_object):
    """Registered at 1 MiB, truncated to 0 by the client: the next read and write are
    SharedMemoryErrors (400). Run in a child process: a SIGBUS would otherwise kill pytest."""
    key, path = shm_object
    code = textwrap.dedent(f"""
        import os
        from capsdeploy.serve.shm import SharedMemoryError, SharedMemoryRegistry
        reg = SharedMemoryRegistry()
        reg.register("r", {key!r}, 0, 1 << 20)
        os.truncate({path!r}, 0)
        for op in (lambda: reg.read("r", 0, 4096, "input"), lambda: reg.write("r", 0, 4096, b"x" * 4096, "output")):
            try:
                op()
            except SharedMemoryError as e:
                assert e.status == 400, e.status
                print("refused:", e.message)
            else:
                raise SystemExit("no error")
        assert os.stat({path!r}).st_size == 0, "a write must not grow the client's object"
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.count("refused:") == 2


def test_a_symlinked_key_is_refused(shm_object, tmp_path):
    """Triton's shm_open does not follow symlinks: registering one must not open its target."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 64)
    link_key = f"/capsdeploy_link_{uuid.uuid4().hex[:8]}"
    os.symlink(secret, "/dev/shm" + link_key)
    try:
        reg = SharedMemoryRegistry()
        with pytest.raises(SharedMemoryError) as e:
            reg.register("r", link_key, 0, 64)
        assert e.value.status == 400 and "Unable to open" in e.value.message
        assert reg.status() == []
    finally:
        os.unlink("/dev/shm" + link_key)


def test_a_key_that_is_not_a_regular_file_is_refused(tmp_path):
    name = f"capsdeploy_dir_{uuid.uuid4().hex[:8]}"
    os.mkdir("/dev/shm/" + name)
    try:
        with pytest.raises(SharedMemoryError, match="Unable to open|not a shared memory object"):
            SharedMemoryRegistry().register("r", "/" + name, 0, 0)
    finally:
        os.rmdir("/dev/shm/" + name)


@pytest.mark.parametrize("key", ["/a\0b", "/..", "/.", "..", "/a/b", "/", ""])
def test_keys_that_name_no_object_are_400(key):
    with pytest.raises(SharedMemoryError) as e:
        SharedMemoryRegistry().register("r", key, 0, 0)
    assert e.value.status == 400


class SpyRegistry(SharedMemoryRegistry):
    def __init__(self):
        super().__init__()
        self.reads: list[int] = []

    def read(self, name, offset, size, what):
        self.reads.append(size)
        return super().read(name, offset, size, what)


def _shm_doc(shape, byte_size):
    return {
        "inputs": [
            {
                "name": "image",
                "datatype": "FP32",
                "shape": shape,
                "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": byte_size},
            }
        ]
    }


SPEC = [InputSpec("image", "float32", (1, 28, 28))]


def test_shm_input_sizes_are_checked_before_anything_is_read(shm_object):
    key, _ = shm_object
    reg = SpyRegistry()
    reg.register("r", key, 0, 1 << 20)
    # byte_size far above what the shape needs: refused without copying the region.
    with pytest.raises(ProtocolError, match="needs 3136 bytes"):
        request_from_doc(_shm_doc([1, 1, 28, 28], 1 << 20), [None], SPEC, ["scores"], 8, reg)
    # More rows than max_batch_size (the byte size agrees with the shape): refused unread.
    with pytest.raises(ProtocolError, match="max_batch_size"):
        request_from_doc(_shm_doc([64, 1, 28, 28], 64 * 3136), [None], SPEC, ["scores"], 8, reg)
    assert reg.reads == []
    req = request_from_doc(_shm_doc([2, 1, 28, 28], 2 * 3136), [None], SPEC, ["scores"], 8, reg)
    assert req.inputs["image"].shape == (2, 1, 28, 28) and reg.reads == [2 * 3136]


def _output_doc(region):
    return {
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}],
        "outputs": [
            {
                "name": "scores",
                "parameters": {"shared_memory_region": region, "shared_memory_byte_size": 40},
            }
        ],
    }


def test_unregister_while_a_request_runs_does_not_fail_or_misdirect_it(shm_object):
    """The output region is the one registered when the request was accepted: unregistering it
    (or re-registering the name over another object) before the response is written neither fails
    the computed request nor writes into the other object; the fd closes once the request is done."""
    key, path = shm_object
    other = f"/capsdeploy_other_{uuid.uuid4().hex[:8]}"
    with open("/dev/shm" + other, "wb") as f:
        f.write(b"\0" * 64)
    try:
        reg = SharedMemoryRegistry()
        reg.register("out", key, 0, 1 << 20)
        req = request_from_doc(_output_doc("out"), [None], SPEC, ["scores"], 8, reg)
        held = weakref.ref(req.outputs[0].shm.target)
        reg.unregister("out")
        reg.register("out", other, 0, 64)
        scores = np.arange(10, dtype=np.float32).reshape(1, 10)
        encode_infer_response("capsnet", "1", req, {"scores": scores}, reg)
        with open(path, "rb") as f:
            assert np.frombuffer(f.read(40), np.float32).tolist() == scores.ravel().tolist()
        with open("/dev/shm" + other, "rb") as f:
            assert f.read() == b"\0" * 64
        assert isinstance(req.outputs[0], OutputRequest)
        fd = held().fd
        os.fstat(fd)  # still open: the request holds the unregistered region
        del req
        gc.collect()
        assert held() is None  # the last holder let go: the region (and its descriptor) closed
    finally:
        os.unlink("/dev/shm" + other)
