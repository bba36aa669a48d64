"""An OpenVINO IR (.xml) written by OpenVINO's own tools (NNCF via scripts/nncf_quantize.py)
carries capsdeploy's metadata in its rt_info, so bench and validate treat it as an export."""

import json
from dataclasses import replace

import numpy as np
import pytest

ov = pytest.importorskip("openvino")


def test_an_ir_with_metadata_in_rt_info_runs_like_its_onnx(tiny_run, tmp_path):
    from capsdeploy.export import ExportOptions, export_onnx
    from capsdeploy.runtime.ov_backend import RT_INFO_KEY, OvBackend

    export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions())
    onnx_backend = OvBackend(tmp_path / "m.onnx", cache_dir=None)
    model = ov.Core().read_model(str(tmp_path / "m.onnx"))
    marked = replace(onnx_backend.metadata, precision="int8")  # what the NNCF script writes
    model.set_rt_info(json.dumps(marked.to_props()), [RT_INFO_KEY])
    ov.save_model(model, str(tmp_path / "m.xml"))
    ov.save_model(ov.Core().read_model(str(tmp_path / "m.onnx")), str(tmp_path / "bare.xml"))

    ir = OvBackend(tmp_path / "m.xml", cache_dir=None)
    assert ir.metadata == marked
    assert OvBackend(tmp_path / "bare.xml", cache_dir=None).metadata is None  # a foreign IR
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(
        ir.infer({"image": x})["scores"], onnx_backend.infer({"image": x})["scores"], atol=1e-6
    )
