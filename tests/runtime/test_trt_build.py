"""The TensorRT pieces that need no GPU: profiles, cache keys, sidecars, and clear failures."""

import dataclasses

import onnx
import pytest

from capsdeploy.errors import UsageError
from capsdeploy.export import ExportOptions, export_onnx
from capsdeploy.runtime.trt.build import BuildOptions, cache_key, profile_shapes, sidecar_doc
from capsdeploy.runtime.trt.environment import require_tensorrt
from tests.helpers import capsdeploy, tensorrt_ready


@pytest.fixture(scope="module")
def dyn_model(tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("trt") / "m.onnx"
    export_onnx(tiny_run, path, ExportOptions())
    return path


def test_profile_covers_the_batch_axis_only(dyn_model):
    shapes = profile_shapes(onnx.load(dyn_model), BuildOptions(min_batch=2, opt_batch=16, max_batch=64))
    assert shapes == {"image": ((2, 1, 28, 28), (16, 1, 28, 28), (64, 1, 28, 28))}
    with pytest.raises(UsageError, match="min-batch"):
        profile_shapes(onnx.load(dyn_model), BuildOptions(min_batch=8, opt_batch=4))


def test_static_batch_profile(tiny_run, tmp_path):
    export_onnx(tiny_run, tmp_path / "s.onnx", ExportOptions(batch=8))
    assert profile_shapes(onnx.load(tmp_path / "s.onnx"), BuildOptions())["image"] == ((8, 1, 28, 28),) * 3
    with pytest.raises(UsageError, match="static batch"):
        profile_shapes(onnx.load(tmp_path / "s.onnx"), BuildOptions(min_batch=16, opt_batch=16, max_batch=32))


def test_cache_key_changes_with_everything_that_changes_the_plan():
    base = ("a" * 64, "10.7.0", "NVIDIA H100", "9.0", BuildOptions())
    key = cache_key(*base)
    assert key == cache_key(*base) and len(key) == 64
    variants = [
        ("b" * 64, *base[1:]),
        (base[0], "11.0.0", *base[2:]),
        (*base[:2], "NVIDIA A100", *base[3:]),
        (*base[:3], "8.0", base[4]),
        (*base[:4], dataclasses.replace(BuildOptions(), max_batch=512)),
        (*base[:4], dataclasses.replace(BuildOptions(), optimization_level=5)),
        (*base[:4], dataclasses.replace(BuildOptions(), workspace_mib=512)),
    ]
    assert len({cache_key(*v) for v in variants} | {key}) == len(variants) + 1
    # Where the caches live does not change the plan.
    moved = dataclasses.replace(BuildOptions(), timing_cache="/x", engine_cache_dir="/y")
    assert cache_key(*base[:4], moved) == key


def test_sidecar_says_what_it_was_built_from_and_for(dyn_model):
    model = onnx.load(dyn_model)
    opts = BuildOptions()
    shapes = profile_shapes(model, opts)
    props = {p.key: p.value for p in model.metadata_props}
    env = {"tensorrt": "10.7.0", "gpu": "NVIDIA H100", "compute_capability": "9.0"}
    doc = sidecar_doc(dyn_model, "f" * 64, "k", env, opts, shapes, props, 12.5)
    assert doc["built_from"] == {"onnx": str(dyn_model), "onnx_sha256": "f" * 64}
    assert doc["built_for"] == env and doc["profile"]["image"]["max"] == (256, 1, 28, 28)
    assert doc["onnx_metadata"]["capsdeploy.precision"] == "fp32"


@pytest.mark.skipif(tensorrt_ready(), reason="TensorRT and CUDA are present here")
def test_missing_tensorrt_is_a_clear_usage_error():
    with pytest.raises(UsageError, match="TensorRT") as e:
        require_tensorrt()
    assert e.value.exit_code == 2


@pytest.mark.skipif(tensorrt_ready(), reason="TensorRT and CUDA are present here")
def test_cli_exits_2_without_tensorrt(dyn_model, tiny_run, tmp_path):
    for args in (
        ["export", "--format", "trt", "--model", dyn_model, "-o", tmp_path / "m.plan"],
        ["export", "--format", "trt", "--checkpoint", tiny_run, "-o", tmp_path / "m.plan"],
        ["validate", "--engine", "trt", "--checkpoint", tiny_run, "--model", dyn_model],
    ):
        proc = capsdeploy(*args)
        assert proc.returncode == 2, proc.stderr
        assert "TensorRT" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.plan").exists()
