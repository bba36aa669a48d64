"""The OpenVINO backend: the Backend contract (exact dtypes, shapes, dynamic batch, clones in
threads), bf16 refused where OpenVINO reports no BF16, the compiled-model cache, and parity
with ONNX Runtime on the same file. Parity with PyTorch on real digits:
tests/runtime/test_validate_real.py."""

import subprocess
import sys
import threading

import numpy as np
import pytest

from capsdeploy.errors import UsageError
from capsdeploy.runtime.ort_backend import OrtBackend
from capsdeploy.runtime.ov_backend import OvBackend


@pytest.fixture(scope="module")
def onnx_files(tiny_export, tiny_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("ov")
    tiny_export(d / "fp32.onnx")
    tiny_export(d / "u8.onnx", input_dtype="uint8")
    return d


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)


def test_specs_dtypes_and_a_dynamic_batch(onnx_files, tmp_path):
    ov = OvBackend(onnx_files / "fp32.onnx", cache_dir=str(tmp_path))
    assert [(s.name, s.dtype, s.shape) for s in ov.inputs()] == [("image", "float32", (None, 1, 28, 28))]
    assert [(s.name, s.dtype, s.shape) for s in ov.outputs()] == [
        ("scores", "float32", (None, 10)),
        ("poses", "float32", (None, 10, 8)),
    ]
    assert ov.max_batch_size is None and ov.metadata.precision == "fp32"
    for n in (1, 3, 17):
        out = ov.infer({"image": _images(n)})
        assert out["scores"].dtype == np.float32 and out["scores"].shape == (n, 10)
        assert out["poses"].shape == (n, 10, 8)
    u8 = OvBackend(onnx_files / "u8.onnx", cache_dir=None)
    assert u8.inputs()[0].dtype == "uint8"
    with pytest.raises(UsageError, match="dtype float32, expected uint8"):
        u8.infer({"image": _images(2)})


def test_fp32_matches_onnx_runtime_on_the_same_file(onnx_files):
    x = _images(9)
    ov = OvBackend(onnx_files / "fp32.onnx", cache_dir=None).infer({"image": x})
    ort = OrtBackend(onnx_files / "fp32.onnx").infer({"image": x})
    np.testing.assert_allclose(ov["scores"], ort["scores"], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(ov["poses"], ort["poses"], atol=1e-5, rtol=1e-4)


def test_outputs_are_not_overwritten_by_the_next_inference(onnx_files):
    ov = OvBackend(onnx_files / "fp32.onnx", cache_dir=None)
    first = ov.infer({"image": _images(2, 1)})["scores"]
    kept = first.copy()
    ov.infer({"image": _images(2, 2)})
    np.testing.assert_array_equal(first, kept)


def test_clones_in_threads_each_get_their_own_request(onnx_files):
    ov = OvBackend(onnx_files / "fp32.onnx", cache_dir=None)
    inputs = [_images(4, seed) for seed in range(6)]
    expected = [ov.infer({"image": x})["scores"] for x in inputs]
    clones = [ov.clone() for _ in inputs]
    assert len({id(c._request) for c in clones} | {id(ov._request)}) == len(inputs) + 1
    assert all(c.compiled is ov.compiled for c in clones)  # one compiled model, shared
    got = [None] * len(inputs)

    def run(i):
        for _ in range(20):
            got[i] = clones[i].infer({"image": inputs[i]})["scores"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_bf16_is_refused_where_openvino_reports_no_bf16(onnx_files, monkeypatch):
    import capsdeploy.runtime.ov_backend as ob

    monkeypatch.setattr(ob, "device_capabilities", lambda device="CPU": ["FP32", "INT8"])
    with pytest.raises(UsageError, match="reports no BF16 support.*capabilities: FP32, INT8"):
        OvBackend(onnx_files / "fp32.onnx", inference_precision="bf16")
    OvBackend(onnx_files / "fp32.onnx", inference_precision="f32", cache_dir=None)  # f32 still loads


def test_bf16_engine_runs_bf16_where_the_cpu_has_it(onnx_files):
    from capsdeploy.runtime.ov_backend import device_capabilities

    if "BF16" not in device_capabilities():
        pytest.skip("OpenVINO reports no BF16 on this CPU (the refusal is tested above)")
    ov = OvBackend(onnx_files / "fp32.onnx", inference_precision="bf16", cache_dir=None)
    assert ov.compute_precision == "bf16" and ov.math.startswith("BF16")
    f32 = OvBackend(onnx_files / "fp32.onnx", inference_precision="f32", cache_dir=None)
    assert f32.compute_precision is None and f32.math == "FP32"


def test_compiled_models_are_cached_so_a_restart_does_not_recompile(onnx_files, tmp_path):
    cache = tmp_path / "cache"
    OvBackend(onnx_files / "fp32.onnx", cache_dir=str(cache))
    blobs = sorted(p.name for p in cache.iterdir() if p.suffix == ".blob")
    assert len(blobs) == 1
    code = (
        "import openvino as ov; from capsdeploy.runtime.ov_backend import OvBackend;"
        f"b = OvBackend({str(onnx_files / 'fp32.onnx')!r}, cache_dir={str(cache)!r});"
        "print(b.compiled.get_property('LOADED_FROM_CACHE'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "True"  # a new process loaded the blob instead of compiling
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".blob") == blobs


def test_a_missing_or_corrupt_file_is_one_clear_error(tmp_path):
    from capsdeploy.errors import CapsDeployError

    with pytest.raises(UsageError, match="no such model file"):
        OvBackend(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CapsDeployError, match="OpenVINO cannot"):
        OvBackend(bad, cache_dir=None)


def test_an_int8_engine_refuses_a_file_of_another_precision(onnx_files):
    from capsdeploy.runtime.select import make_backend

    for engine in ("ov-int8", "ort-int8", "ort-fp16"):
        with pytest.raises(UsageError, match=rf"--engine {engine} runs an (int8|fp16) export; .* is fp32"):
            make_backend(engine, model=str(onnx_files / "fp32.onnx"))
    assert (
        make_backend("ov", model=str(onnx_files / "fp32.onnx"), cache_dir=None).metadata.precision == "fp32"
    )


def test_an_unwritable_cache_folder_compiles_without_a_cache(onnx_files, tmp_path):
    """The serving image's root is read-only: the cache cannot be made, the model still serves."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    b = OvBackend(onnx_files / "fp32.onnx", cache_dir=str(blocker / "cache"))
    out = b.infer({"image": _images(2)})
    assert out["scores"].shape == (2, 10)
