import onnx
import pytest
from onnx import TensorProto, helper

from capsdeploy.export import ExportOptions, check_tensorrt_compat, export_onnx


def _model(nodes, inputs, outputs, inits=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _errors(model):
    return [str(f) for f in check_tensorrt_compat(model) if f.level == "error"]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_our_exports_pass(tiny_run, tmp_path, precision):
    opts = ExportOptions(precision=precision, calib_samples=32, with_decoder=True)
    report = export_onnx(tiny_run, tmp_path / "m.onnx", opts)
    assert report["tensorrt_findings"] == []


def test_einsum_with_three_operands_and_ellipsis():
    x = [_vi(n, [2, 2]) for n in "abc"]
    m = _model(
        [helper.make_node("Einsum", ["a", "b", "c"], ["y"], equation="ij,jk,kl->il")], x, [_vi("y", [2, 2])]
    )
    assert any("3 operands" in e for e in _errors(m))
    m = _model(
        [helper.make_node("Einsum", ["a", "b"], ["y"], equation="...j,jk->...k")], x[:2], [_vi("y", [2, 2])]
    )
    assert any("ellipsis" in e for e in _errors(m))
    m = _model(
        [helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")], x[:2], [_vi("y", [2, 2])]
    )
    assert _errors(m) == []


def test_reduce_axes_must_be_initializers():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("ReduceSum", ["x", "s"], ["y"]),
    ]
    m = _model(nodes, [_vi("x", ["batch", 4])], [_vi("y", None)])
    assert any("axes come from a computed tensor" in e for e in _errors(m))
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    m = _model(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"])],
        [_vi("x", ["batch", 4])],
        [_vi("y", None)],
        [axes],
    )
    assert _errors(m) == []


def test_float64_dynamic_dims_opset_unsupported_ops_and_zero_points():
    m = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [_vi("x", ["b", "h"], TensorProto.DOUBLE)],
        [_vi("y", ["b", "h"], TensorProto.DOUBLE)],
        opset=21,
    )
    errs = _errors(m)
    assert any("float64" in e for e in errs)
    assert any("axis 1 is dynamic" in e for e in errs)
    assert any("opset 21 outside" in e for e in errs)
    assert check_tensorrt_compat(m, "11") and not any(
        "opset" in str(f) for f in check_tensorrt_compat(m, "11")
    )

    zp = helper.make_tensor("zp", TensorProto.INT8, [], [3])
    sc = helper.make_tensor("sc", TensorProto.FLOAT, [], [0.1])
    m = _model(
        [helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["y"])],
        [_vi("x", ["b", 4])],
        [_vi("y", ["b", 4], TensorProto.INT8)],
        [zp, sc],
    )
    assert any("zero point" in e for e in _errors(m))

    m = _model(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])],
        [_vi("x", ["b", 4])],
        [_vi("y", None)],
    )
    assert any("static Q/DQ" in e for e in _errors(m))
    m = _model(
        [helper.make_node("StringNormalizer", ["x"], ["y"])],
        [_vi("x", [1], TensorProto.STRING)],
        [_vi("y", None)],
    )
    assert any("supported operators" in e for e in _errors(m))


def test_check_cli_flags_and_exit_codes(tmp_path):
    from tests.helpers import capsdeploy

    x = [_vi(n, [2, 2]) for n in "abc"]
    bad = _model(
        [helper.make_node("Einsum", ["a", "b", "c"], ["y"], equation="ij,jk,kl->il")], x, [_vi("y", [2, 2])]
    )
    onnx.save(bad, tmp_path / "bad.onnx")
    proc = capsdeploy("check", tmp_path / "bad.onnx")
    assert proc.returncode == 1 and "Einsum" in proc.stdout and "NOT compatible" in proc.stdout
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage" * 10)
    proc = capsdeploy("check", tmp_path / "junk.onnx")
    assert proc.returncode == 1 and "corrupt" in proc.stderr and "Traceback" not in proc.stderr
    assert capsdeploy("check", tmp_path / "none.onnx").returncode == 2
