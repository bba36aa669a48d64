"""The TensorRT pieces that need no GPU: profiles, cache keys, sidecars, and clear failures."""

import dataclasses
from pathlib import Path

import onnx
import pytest

from capsdeploy.errors import UsageError
from capsdeploy.runtime.trt.build import BuildOptions, cache_key, profile_shapes, sidecar_doc
from capsdeploy.runtime.trt.environment import require_tensorrt
from tests.helpers import capsdeploy, tensorrt_ready


@pytest.fixture(scope="module")
def dyn_model(tiny_export, tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("trt") / "m.onnx"
    tiny_export(path)
    return path


def test_profile_covers_the_batch_axis_only(dyn_model):
    shapes = profile_shapes(onnx.load(dyn_model), BuildOptions(min_batch=2, opt_batch=16, max_batch=64))
    assert shapes == {"image": ((2, 1, 28, 28), (16, 1, 28, 28), (64, 1, 28, 28))}
    with pytest.raises(UsageError, match="min-batch"):
        profile_shapes(onnx.load(dyn_model), BuildOptions(min_batch=8, opt_batch=4))


def test_static_batch_profile(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "s.onnx", batch=8)
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


# --- Caches and sidecars, without a GPU. TensorRT itself is faked only where no GPU work is
# claimed: the environment probe and the build call; everything checked is capsdeploy's logic.


# fake_builds (tests/runtime/conftest.py): the environment probe and the build call, faked.


def test_auto_built_plans_are_named_by_cache_key_not_by_file_stem(tiny_export, fake_builds, tiny_run, tmp_path):
    from capsdeploy.runtime.trt.build import build_engine

    a, b = tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx"
    tiny_export(a)
    tiny_export(b, input_dtype="uint8")
    ra, rb = build_engine(a, None, BuildOptions()), build_engine(b, None, BuildOptions())
    assert ra.output != rb.output  # the old code wrote both to plans/model.plan
    assert ra.output.endswith(ra.cache_key + ".plan") and rb.output.endswith(
        rb.cache_key + ".plan"
    )
    assert str(a) in Path(ra.output).read_text() and str(b) in Path(rb.output).read_text()
    again = build_engine(a, None, BuildOptions())
    assert again.cache_hit and len(fake_builds) == 2
    # FP32 models build with TF32 off, and the sidecar says so; the timing cache is per version and GPU.
    assert fake_builds[0]["tf32"] is False and ra.sidecar["math"] == {"tf32": False}
    assert fake_builds[0]["timing"].name == "timing-trt10.7.0-sm90.cache"


def test_a_crash_between_sidecar_and_plan_never_breaks_later_builds(
    fake_builds, dyn_model, tmp_path, monkeypatch
):
    import capsdeploy.runtime.trt.build as build

    real_write = build.write_bytes_atomic

    def crash(path, data):
        raise KeyboardInterrupt  # killed after the sidecar, before the plan

    monkeypatch.setattr(build, "write_bytes_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        build.build_engine(dyn_model, None, BuildOptions())
    monkeypatch.setattr(build, "write_bytes_atomic", real_write)
    r = build.build_engine(dyn_model, None, BuildOptions())  # a sidecar alone is not a cache hit
    assert not r.cache_hit and len(fake_builds) == 2
    assert build.build_engine(dyn_model, None, BuildOptions()).cache_hit


def test_a_plan_whose_sidecar_is_missing_or_foreign_is_rebuilt(fake_builds, dyn_model, tmp_path):
    from capsdeploy.runtime.trt.build import build_engine

    r = build_engine(dyn_model, None, BuildOptions())
    sidecar = tmp_path / "cache" / "capsdeploy" / "tensorrt" / "engines" / (r.cache_key + ".plan.json")
    assert sidecar.is_file()
    sidecar.write_text('{"cache_key": "someone else"}')
    assert not build_engine(dyn_model, None, BuildOptions()).cache_hit
    sidecar.unlink()
    assert not build_engine(dyn_model, None, BuildOptions()).cache_hit


def test_tf32_is_part_of_the_cache_key():
    base = ("a" * 64, "10.7.0", "NVIDIA H100", "9.0", BuildOptions())
    assert cache_key(*base, tf32=False) != cache_key(*base, tf32=True)


class _FakeTimingConfig:
    """The two IBuilderConfig calls the timing-cache guard makes, with TensorRT's contract:
    a foreign or corrupt buffer is refused (None, or set_timing_cache returns False)."""

    def __init__(self, accept: bool):
        self.accept, self.set_with = accept, []

    def create_timing_cache(self, data):
        if data == b"garbage":
            return None
        return ("cache", bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch):
        assert cache is not None, "set_timing_cache(None) is the TypeError the guard must avoid"
        self.set_with.append(cache)
        return self.accept or cache[1] == b""


@pytest.mark.parametrize("content, accept", [(b"garbage", True), (b"other GPU's cache", False)])
def test_a_corrupt_or_foreign_timing_cache_falls_back_to_an_empty_one(tmp_path, caplog, content, accept):
    from capsdeploy.runtime.trt.build import apply_timing_cache

    path = tmp_path / "t.cache"
    path.write_bytes(content)
    config = _FakeTimingConfig(accept)
    apply_timing_cache(config, path)
    assert config.set_with[-1] == ("cache", b"")
    assert "timing cache not usable" in caplog.text


def test_a_good_timing_cache_is_used_and_a_failed_save_keeps_the_build(tmp_path, caplog):
    from capsdeploy.runtime.trt.build import apply_timing_cache, save_timing_cache

    path = tmp_path / "t.cache"
    path.write_bytes(b"tuned")
    config = _FakeTimingConfig(True)
    apply_timing_cache(config, path)
    assert config.set_with == [("cache", b"tuned")] and not caplog.text

    class Broken:
        def get_timing_cache(self):
            raise RuntimeError("serialize failed")

    save_timing_cache(Broken(), tmp_path / "t2.cache")  # no exception: the plan is not lost
    assert "could not save the timing cache" in caplog.text and not (tmp_path / "t2.cache").exists()


def test_graph_buckets_are_few_and_cover_the_profile():
    from capsdeploy.runtime.trt.backend import bucket_for, graph_buckets

    assert graph_buckets(1, 256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert graph_buckets(3, 100) == [4, 8, 16, 32, 64, 100] and graph_buckets(3, 3) == [3]
    buckets = graph_buckets(2, 100)
    for n in range(2, 101):
        b = bucket_for(n, buckets)
        assert n <= b <= 100 and (b == 100 or b < 2 * n)  # never more than double the rows


def test_two_builders_of_one_key_at_once_both_end_with_a_valid_pair(fake_builds, dyn_model):
    import json
    import threading

    from capsdeploy.runtime.trt.build import build_engine

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(build_engine(dyn_model, None, BuildOptions())))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len({r.output for r in results}) == 1
    plan = Path(results[0].output)
    assert plan.read_bytes().startswith(b"plan of ")
    assert json.loads(Path(str(plan) + ".json").read_text())["cache_key"] == results[0].cache_key
    assert not [p for p in plan.parent.iterdir() if p.name.endswith(".tmp")]  # no half-written leftovers
