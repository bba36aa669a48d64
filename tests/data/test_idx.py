import gzip

import numpy as np
import pytest

from capsdeploy.data import read_idx, write_idx
from capsdeploy.errors import CapsDeployError


@pytest.mark.parametrize("name", ["x-images-idx3-ubyte", "x-images-idx3-ubyte.gz"])
def test_round_trip(tmp_path, name):
    a = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, a)
    b = read_idx(tmp_path / name)
    assert b.dtype == np.uint8 and np.array_equal(a, b)
    b[0, 0, 0] = 1  # writable


def _header(dims):
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\x00\x00\x0d\x03" + bytes(20), "bad IDX magic"),
        (_header([3, 2, 2]) + bytes(11), "truncated"),
        (_header([3]) + bytes(4), "trailing bytes"),
        (b"\x00\x00", "too short"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, raw, match):
    p = tmp_path / "f"
    p.write_bytes(raw)
    with pytest.raises(CapsDeployError, match=match):
        read_idx(p)


def test_corrupt_gzip(tmp_path):
    p = tmp_path / "f.gz"
    p.write_bytes(gzip.compress(_header([2]) + bytes(2))[:-6])
    with pytest.raises(CapsDeployError, match="corrupt or truncated"):
        read_idx(p)


def test_real_mnist_files(mnist_dir):
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).min() > 800  # every digit well represented
