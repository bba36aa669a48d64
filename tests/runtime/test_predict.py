import json

import numpy as np
from PIL import Image

from capsdeploy.data import load_split
from capsdeploy.export import ExportOptions, export_onnx
from tests.helpers import capsdeploy


def test_predict_png_same_classes_through_torch_and_ort(tiny_run, tmp_path):
    export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions(input_dtype="uint8", with_decoder=True))
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


def test_predict_bad_upload_and_trt_absent(tiny_run, tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x00" * 10)
    proc = capsdeploy("predict", tmp_path / "x.png", "--engine", "torch", "--checkpoint", tiny_run)
    assert proc.returncode == 2 and "not a readable PNG" in proc.stderr
    proc = capsdeploy("predict", tmp_path / "x.png", "--engine", "trt", "--model", tmp_path / "m.onnx")
    assert proc.returncode == 2 and "TensorRT" in proc.stderr and "CUDA" in proc.stderr
