import json

import onnx
import pytest

from capsdeploy.export import ExportOptions, export_onnx
from tests.helpers import capsdeploy, make_run, tensorrt_ready


def _export(run, path, **kw):
    export_onnx(run, path, ExportOptions(**kw))
    return path


def test_validate_passes_and_reports_everything(tiny_run, tmp_path):
    model = _export(tiny_run, tmp_path / "m.onnx", input_dtype="uint8", with_decoder=True)
    proc = capsdeploy(
        "validate",
        "--checkpoint",
        tiny_run,
        "--model",
        model,
        "--num-samples",
        100,
        "--batch-size",
        32,
        "--json",
        "-",
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["passed"] and r["num_samples"] == 100 and r["precision"] == "fp32"
    assert set(r["outputs"]) == {"scores", "poses", "reconstruction"}
    for key in ("max_abs_error", "max_rel_error", "mean_abs_error", "p99_abs_error", "min_cosine_similarity"):
        assert key in r["outputs"]["scores"]
    assert r["outputs"]["scores"]["max_abs_error"] <= 1e-5
    assert r["top1_agreement"] == 1.0 and "candidate_accuracy" in r


def test_tolerance_failure_exits_1(tiny_run, tmp_path):
    model = _export(tiny_run, tmp_path / "m.onnx")
    proc = capsdeploy(
        "validate",
        "--checkpoint",
        tiny_run,
        "--model",
        model,
        "--num-samples",
        64,
        "--atol",
        1e-15,
        "--rtol",
        0,
    )
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout and "beyond atol" in proc.stdout


def test_checkpoint_mismatch_exits_2(tiny_run, tmp_path):
    model = _export(tiny_run, tmp_path / "m.onnx")
    other = make_run(tmp_path / "other", seed=1)
    proc = capsdeploy("validate", "--checkpoint", other, "--model", model, "--num-samples", 8)
    assert proc.returncode == 2 and "other weights" in proc.stderr


def test_shape_mismatch_and_corrupt_file(tiny_run, tmp_path):
    big = make_run(tmp_path / "big", {"image_size": 36})
    model = _export(big, tmp_path / "m.onnx")
    proc = capsdeploy("validate", "--checkpoint", tiny_run, "--model", model, "--num-samples", 8)
    assert proc.returncode == 2 and "does not fit" in proc.stderr
    (tmp_path / "cut.onnx").write_bytes(model.read_bytes()[:5000])
    proc = capsdeploy("validate", "--checkpoint", tiny_run, "--model", tmp_path / "cut.onnx")
    assert proc.returncode == 1 and "corrupt" in proc.stderr and "Traceback" not in proc.stderr


def test_foreign_onnx_without_metadata_still_validates(tiny_run, tmp_path):
    model = _export(tiny_run, tmp_path / "m.onnx")
    proto = onnx.load(model)
    del proto.metadata_props[:]
    onnx.save(proto, tmp_path / "bare.onnx")
    proc = capsdeploy(
        "validate",
        "--checkpoint",
        tiny_run,
        "--model",
        tmp_path / "bare.onnx",
        "--num-samples",
        32,
        "--json",
        "-",
    )
    r = json.loads(proc.stdout)
    assert proc.returncode == 0 and r["passed"] and "no capsdeploy metadata" in r["notes"][0]


@pytest.mark.skipif(tensorrt_ready(), reason="TensorRT and CUDA are present here")
def test_engine_trt_without_tensorrt_is_a_usage_error(tiny_run, tmp_path):
    proc = capsdeploy("validate", "--checkpoint", tiny_run, "--model", tmp_path / "x.plan", "--engine", "trt")
    assert proc.returncode == 2 and "TensorRT" in proc.stderr
