import hashlib

import numpy as np
import pytest

import capsdeploy.data.download as dl
from capsdeploy.data import load_split, write_idx
from capsdeploy.data.datasets import cache_dir
from capsdeploy.errors import CapsDeployError, UsageError


def _write_split(folder, split, n, value):
    write_idx(folder / f"{split}-images-idx3-ubyte.gz", np.full((n, 28, 28), value, np.uint8))
    write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a", tmp_path / "b", cache_dir() / "mnist"
    for i, d in enumerate((a, b, c)):
        _write_split(d, "t10k", 5 + i, i)
    monkeypatch.setenv("CAPSDEPLOY_DATA", str(b))
    assert len(load_split("mnist", "t10k", a)) == 5
    assert len(load_split("mnist", "t10k")) == 6
    monkeypatch.delenv("CAPSDEPLOY_DATA")
    assert len(load_split("mnist", "t10k")) == 7


def test_named_subfolder_of_a_root_is_found(tmp_path, monkeypatch):
    _write_split(tmp_path / "fashion-mnist", "t10k", 4, 9)
    monkeypatch.setenv("CAPSDEPLOY_DATA", str(tmp_path))
    s = load_split("fashion-mnist", "t10k")
    assert len(s) == 4 and s.class_names[9] == "Ankle boot"


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(UsageError) as e:
        load_split("mnist", "t10k", tmp_path, download=False)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg
    assert e.value.exit_code == 2
    with pytest.raises(UsageError, match="not a standard mnist file"):
        load_split("mnist", "digits10k", tmp_path)
    with pytest.raises(UsageError, match="unknown dataset"):
        load_split("cifar", "train")


def test_download_keeps_file_only_when_checksum_matches(tmp_path, monkeypatch):
    payload = b"pretend idx"
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: dest.write_bytes(payload))
    good = hashlib.md5(payload).hexdigest()
    path = dl.download_file("f.gz", ("http://mirror/",), good, tmp_path)
    assert path.read_bytes() == payload
    with pytest.raises(CapsDeployError, match="md5"):
        dl.download_file("g.gz", ("http://m1/", "http://m2/"), "0" * 32, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]  # nothing half-written


def test_failed_download_explains(tmp_path):
    with pytest.raises(UsageError, match="download failed.*network disabled"):
        load_split("mnist", "t10k", tmp_path)


def test_synthetic_is_deterministic_and_learnable_shape():
    a = load_split("synthetic", "t10k", limit=50)
    b = load_split("synthetic", "t10k", limit=80)
    assert a.images.shape == (50, 1, 28, 28)
    assert np.array_equal(a.images, b.images[:50]) and np.array_equal(a.labels, b.labels[:50])
    assert not np.array_equal(a.images, load_split("synthetic", "train", limit=50).images)
    assert set(load_split("synthetic", "t10k", limit=300).labels) == set(range(10))


def test_real_digits10k(mnist_dir):
    s = load_split("mnist", "digits10k", mnist_dir)
    assert s.images.shape == (10000, 1, 28, 28) and s.images.max() == 255


def test_fashion_mnist_from_debian_package():
    from pathlib import Path

    from tests.helpers import IN_CI

    system = Path("/usr/share/datasets/fashion-mnist")
    if not (system / "t10k-images-idx3-ubyte.gz").is_file():
        if IN_CI:
            pytest.fail("CI=true but Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
        pytest.skip("apt-get install dataset-fashion-mnist to run this")
    # Debian recompressed the .gz files, so their md5 differs from the official downloads'
    # (which the registry checks); the content is what must match.
    test = load_split("fashion-mnist", "t10k", download=False)  # found with no --data-dir
    train = load_split("fashion-mnist", "train", download=False)
    assert test.images.shape == (10000, 1, 28, 28) and np.bincount(test.labels).tolist() == [1000] * 10
    assert train.images.shape == (60000, 1, 28, 28) and np.bincount(train.labels).tolist() == [6000] * 10
    assert test.class_names[9] == "Ankle boot"
