from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from capsdeploy.errors import CapsDeployError, UsageError
from capsdeploy.export import ExportOptions, export_onnx, read_metadata
from capsdeploy.model.checkpoint import load_run, read_run_info
from capsdeploy.runtime.compare import DEFAULT_TOLERANCES, compare_outputs
from capsdeploy.runtime.ort_backend import OrtBackend
from tests.helpers import make_run

FP32 = DEFAULT_TOLERANCES["fp32"]


def _torch_outputs(run, x, iters=None, decoder=False):
    model, _ = load_run(run, routing_iters=iters)
    with torch.no_grad():
        out = model(torch.from_numpy(x), reconstruct=decoder)
    return dict(zip(["scores", "poses", "reconstruction"], (t.numpy() for t in out), strict=False))


def _pixels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("iters", [1, 2, 3, 5])
def test_routing_iterations_match_pytorch(tiny_run, tmp_path, iters):
    report = export_onnx(tiny_run, tmp_path / "m.onnx", ExportOptions(routing_iters=iters))
    assert report.routing_iters == iters
    assert bool(report.warnings) == (iters != 3)  # trained (config) count is 3
    x = _pixels(16).astype(np.float32) / 255
    got = OrtBackend(tmp_path / "m.onnx").infer({"image": x})
    ref = _torch_outputs(tiny_run, x, iters)
    verdict = compare_outputs(ref, got, FP32)
    assert verdict.passed, verdict.failures
    parity = verdict.outputs["poses"]["max_abs_error"]
    # The unrolled count matters: another count is much further away than the parity error.
    other = _torch_outputs(tiny_run, x, 4 if iters == 5 else iters + 1)["poses"]
    assert np.abs(other - got["poses"]).max() > 10 * parity


def test_one_dynamic_file_serves_batches_1_7_64(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx")
    backend = OrtBackend(tmp_path / "m.onnx")
    assert backend.inputs()[0].shape[0] is None or isinstance(backend.inputs()[0].shape[0], str)
    for n in (1, 7, 64):
        x = _pixels(n, n).astype(np.float32) / 255
        got = backend.infer({"image": x})
        assert got["scores"].shape == (n, 10) and got["poses"].shape == (n, 10, 8)
        assert compare_outputs(_torch_outputs(tiny_run, x), got, FP32).passed


def test_static_batch_rejects_other_sizes(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", batch=4)
    backend = OrtBackend(tmp_path / "m.onnx")
    assert backend.inputs()[0].shape[0] == 4
    backend.infer({"image": np.zeros((4, 1, 28, 28), np.float32)})
    with pytest.raises(CapsDeployError):
        backend.infer({"image": np.zeros((3, 1, 28, 28), np.float32)})


def test_uint8_input_with_decoder(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", input_dtype="uint8", with_decoder=True)
    backend = OrtBackend(tmp_path / "m.onnx")
    assert backend.inputs()[0].dtype == "uint8"
    pixels = _pixels(9)
    got = backend.infer({"image": pixels})
    ref = _torch_outputs(tiny_run, pixels.astype(np.float32) / 255, decoder=True)
    verdict = compare_outputs(ref, got, FP32)
    assert set(verdict.outputs) == {"scores", "poses", "reconstruction"}
    assert verdict.passed, verdict.failures


def test_metadata_round_trip(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", routing_iters=2, input_dtype="uint8")
    meta = read_metadata(onnx.load(tmp_path / "m.onnx"))
    info = read_run_info(tiny_run)
    assert meta.routing_iters == 2 and meta.trained_routing_iters == 3
    assert meta.input_dtype == "uint8" and meta.precision == "fp32"
    assert meta.weights_sha256 == info.weights_sha256 and len(meta.weights_sha256) == 64
    assert meta.normalization == info.normalization
    assert meta.run_config["model"] == info.raw["model"]
    assert meta.class_names == [str(i) for i in range(10)]
    assert OrtBackend(tmp_path / "m.onnx").metadata == meta


def test_backends_implement_the_protocol(tiny_export, tiny_run, tmp_path):
    from capsdeploy.runtime.backend import Backend
    from capsdeploy.runtime.torch_backend import TorchBackend

    tiny_export(tmp_path / "m.onnx")
    for backend in (OrtBackend(tmp_path / "m.onnx"), TorchBackend(tiny_run)):
        assert isinstance(backend, Backend)
        assert [s.name for s in backend.inputs()] == ["image"]
        assert [s.name for s in backend.outputs()] == ["scores", "poses"]
        backend.warmup()
        assert backend.infer({"image": np.zeros((3, 1, 28, 28), np.float32)})["scores"].shape == (3, 10)


def test_fp16_graph_runs_in_ort_and_keeps_routing_fp32(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", precision="fp16")
    model = onnx.load(tmp_path / "m.onnx")
    fp16_inits = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert {i.name for i in fp16_inits}  # convolution and prediction weights are FP16
    softmax_out = {n.output[0] for n in model.graph.node if n.op_type == "Softmax"}
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    assert softmax_out and all(types[o] == onnx.TensorProto.FLOAT for o in softmax_out)
    x = _pixels(32).astype(np.float32) / 255
    got = OrtBackend(tmp_path / "m.onnx").infer({"image": x})
    assert got["scores"].dtype == np.float32
    # Random weights give near-tied scores, so top-1 is judged on trained models (slow tests).
    elementwise = replace(DEFAULT_TOLERANCES["fp16"], min_top1_agreement=0.0)
    verdict = compare_outputs(_torch_outputs(tiny_run, x), got, elementwise)
    assert verdict.passed, verdict.failures


def test_fp16_io(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", precision="fp16", io_dtype="float16")
    backend = OrtBackend(tmp_path / "m.onnx")
    assert backend.inputs()[0].dtype == "float16"
    out = backend.infer({"image": np.zeros((2, 1, 28, 28), np.float16)})
    assert out["scores"].dtype == np.float16


def test_int8_is_symmetric_qdq_on_convolutions_only(tiny_export, tiny_run, tmp_path):
    tiny_export(tmp_path / "m.onnx", precision="int8", calib_samples=64)
    model = onnx.load(tmp_path / "m.onnx")
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert not {"QLinearConv", "ConvInteger", "DynamicQuantizeLinear"} & set(ops)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2:
            assert not inits[n.input[2]].any(), "zero point must be 0"
    producers = {o: n for n in model.graph.node for o in n.output}
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in matmul.input)
    x = _pixels(16).astype(np.float32) / 255
    got = OrtBackend(tmp_path / "m.onnx").infer({"image": x})
    ref = _torch_outputs(tiny_run, x)
    assert np.abs(ref["scores"] - got["scores"]).max() < 0.1


def test_cpu_int8_is_uint8_activations_in_qlinearconv(tiny_run, tmp_path):
    opts = ExportOptions(precision="int8", calib_samples=64, int8_target="cpu", int8_format="qoperator")
    export_onnx(tiny_run, tmp_path / "m.onnx", opts)
    model = onnx.load(tmp_path / "m.onnx")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QLinearConv") == 2 and "Conv" not in ops  # conv1 and the primary capsules
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "QLinearConv")
    x_zero_point, w_zero_point = inits[conv.input[2]], inits[conv.input[5]]
    assert x_zero_point.dtype == np.uint8 and w_zero_point.dtype == np.int8 and not w_zero_point.any()
    x = _pixels(16).astype(np.float32) / 255
    got = OrtBackend(tmp_path / "m.onnx").infer({"image": x})
    assert np.abs(_torch_outputs(tiny_run, x)["scores"] - got["scores"]).max() < 0.1
    with pytest.raises(UsageError, match="Q/DQ"):
        export_onnx(tiny_run, tmp_path / "t.onnx", ExportOptions(precision="int8", int8_format="qoperator"))


def test_bad_options_and_nothing_half_written(tiny_run, tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(UsageError):
        export_onnx(tiny_run, out, ExportOptions(opset=12))
    with pytest.raises(UsageError):
        export_onnx(tiny_run, out, ExportOptions(io_dtype="float16"))
    with pytest.raises(UsageError):
        export_onnx(tmp_path / "nope", out, ExportOptions())
    assert list(tmp_path.iterdir()) == []


def test_three_channel_36px_variant_exports(tmp_path):
    run = make_run(tmp_path / "run", {"in_channels": 3, "image_size": 36, "num_classes": 4})
    export_onnx(run, tmp_path / "m.onnx", ExportOptions(input_dtype="uint8"))
    backend = OrtBackend(tmp_path / "m.onnx")
    assert backend.inputs()[0].shape[1:] == (3, 36, 36)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 3, 36, 36), dtype=np.uint8)
    ref = _torch_outputs(run, pixels.astype(np.float32) / 255)
    assert compare_outputs(ref, backend.infer({"image": pixels}), FP32).passed


def test_prediction_matmul_alone_is_quantized_routing_stays_float(tiny_run, tmp_path):
    import onnx

    from capsdeploy.export import ExportOptions, export_onnx

    export_onnx(
        tiny_run, tmp_path / "q.onnx",
        ExportOptions(precision="int8", calib_samples=16, int8_ops=("Conv", "PredictionMatMul")),
    )  # fmt: skip
    graph = onnx.load(tmp_path / "q.onnx").graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    quantized = [n.name for n in matmuls if all(made_by.get(i) == "DequantizeLinear" for i in n.input)]
    assert len(matmuls) > 1 and len(quantized) == 1  # the prediction MatMul; routing's are float
