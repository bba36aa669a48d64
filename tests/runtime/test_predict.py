import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from capsdeploy.data import load_split
from tests.helpers import capsdeploy, tensorrt_ready, torch_blocked

REPO = Path(__file__).resolve().parents[2]


def test_predict_png_same_classes_through_torch_and_ort(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", input_dtype="uint8", with_decoder=True)
    images = load_split("synthetic", "t10k", limit=12).images
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img[0]).save(paths[-1])
    torch_out = json.loads(
        capsdeploy("predict", *paths, "--engine", "torch", "--checkpoint", tiny_run, check=True).stdout
    )
    ort_proc = capsdeploy(
        "predict",
        *paths,
        "--engine",
        "auto",
        "--model",
        tmp_path / "m.onnx",
        "--reconstruction-dir",
        tmp_path / "rec",
        check=True,
    )
    ort_out = json.loads(ort_proc.stdout)
    assert ort_out["engine"] == "ort" and "ONNX Runtime on CPU" in ort_proc.stderr
    assert [p["class"] for p in torch_out["predictions"]] == [p["class"] for p in ort_out["predictions"]]
    for a, b in zip(torch_out["predictions"], ort_out["predictions"], strict=True):
        assert abs(a["score"] - b["score"]) < 1e-5 and len(a["scores"]) == 10
    rec = Image.open(ort_out["predictions"][0]["reconstruction"])
    assert rec.size == (28, 28) and np.asarray(rec).dtype == np.uint8


def test_predict_bad_upload(tiny_run, tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x00" * 10)
    proc = capsdeploy("predict", tmp_path / "x.png", "--engine", "torch", "--checkpoint", tiny_run)
    assert proc.returncode == 2 and "not a readable PNG" in proc.stderr


@pytest.mark.skipif(tensorrt_ready(), reason="TensorRT and CUDA are present here")
def test_predict_trt_without_tensorrt_names_what_is_missing(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x00" * 10)
    proc = capsdeploy("predict", tmp_path / "x.png", "--engine", "trt", "--model", tmp_path / "m.onnx")
    assert proc.returncode == 2 and "TensorRT" in proc.stderr and "CUDA" in proc.stderr


def _requirements(name):
    lines = (REPO / "requirements" / name).read_text().splitlines()
    return {
        re.split(r"[<>=\s#\[]", ln, maxsplit=1)[0].lower() for ln in lines if ln and not ln.startswith("#")
    }


def test_predict_with_onnx_runtime_runs_where_torch_cannot_be_imported(tiny_export, tiny_run, tmp_path):
    """The inference path of a torch-free install: torch unimportable, and nothing that
    requirements/train.txt adds (onnxscript, onnxslim, safetensors) imported either; a command
    that does need torch says so in one line."""
    tiny_export(tmp_path / "m.onnx", input_dtype="uint8")
    images = load_split("synthetic", "t10k", limit=3).images
    for i, img in enumerate(images):
        Image.fromarray(img[0]).save(tmp_path / f"{i}.png")
    code, env, modules = torch_blocked(tmp_path)
    args = ["predict", *(tmp_path / f"{i}.png" for i in range(3)), "--engine", "auto", "--model"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args), tmp_path / "m.onnx"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["engine"] == "ort" and len(out["predictions"]) == 3
    imported = json.loads(modules.read_text())
    assert "torch" not in imported
    dists = importlib.metadata.packages_distributions()
    used = {d.lower() for m in imported if "." not in m for d in dists.get(m, [])}
    train_only = _requirements("train.txt") - _requirements("runtime.txt")
    assert train_only and not used & train_only, used & train_only
    assert _requirements("runtime.txt") >= {"onnxruntime", "numpy", "pillow"}
    proc = capsdeploy("eval", "--checkpoint", tiny_run, env_extra={"PYTHONPATH": env["PYTHONPATH"]})
    assert proc.returncode == 2 and "needs torch" in proc.stderr and "Traceback" not in proc.stderr


def test_import_capsdeploy_does_not_import_torch():
    proc = subprocess.run(
        [sys.executable, "-c", "import capsdeploy, sys; assert 'torch' not in sys.modules, 'torch imported'"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_predict_on_openvino_runs_where_torch_cannot_be_imported(tiny_export, tiny_run, tmp_path):
    """--engine ov on a torch-free install: torch unimportable, the same predictions as ort."""
    tiny_export(tmp_path / "m.onnx", input_dtype="uint8")
    images = load_split("synthetic", "t10k", limit=3).images
    for i, img in enumerate(images):
        Image.fromarray(img[0]).save(tmp_path / f"{i}.png")
    code, env, modules = torch_blocked(tmp_path)
    got = {}
    for engine in ("ov", "ort"):
        args = ["predict", *(tmp_path / f"{i}.png" for i in range(3)), "--engine", engine, "--model"]
        proc = subprocess.run(
            [sys.executable, "-c", code, *map(str, args), tmp_path / "m.onnx"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        got[engine] = json.loads(proc.stdout)
        assert "torch" not in json.loads(modules.read_text())
    assert got["ov"]["engine"] == "ov" and _requirements("runtime.txt") >= {"openvino"}
    for a, b in zip(got["ov"]["predictions"], got["ort"]["predictions"], strict=True):
        assert a["class"] == b["class"] and abs(a["score"] - b["score"]) < 1e-5
