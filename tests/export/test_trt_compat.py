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
    assert report.tensorrt_findings == []


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
    assert not any("float64" in e for e in errs)  # the parser casts DOUBLE to FLOAT: a warning
    assert any("float64" in str(f) and f.level == "warning" for f in check_tensorrt_compat(m))
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


# --- One test per rule that depends on the TensorRT version (sources in trt_compat.py).


def _errors_at(model, version):
    return [str(f) for f in check_tensorrt_compat(model, version) if f.level == "error"]


def _einsum(equation, n):
    x = [_vi(c, [2, 2]) for c in "abc"[:n]]
    return _model(
        [helper.make_node("Einsum", list("abc"[:n]), ["y"], equation=equation)], x, [_vi("y", None)]
    )


@pytest.mark.parametrize(
    "equation, n, words",
    [("ij,jk,kl->il", 3, "3 operands"), ("...j,jk->...k", 2, "ellipsis"), ("ii,jk->ik", 2, "diagonal")],
)
def test_einsum_limits_end_at_10_12(equation, n, words):
    m = _einsum(equation, n)
    for old in ("10", "10.0", "10.11"):
        assert any(words in e for e in _errors_at(m, old)), old
    for new in ("10.12", "10.15", "11.5"):
        assert _errors_at(m, new) == [], new


def test_opset_ranges_per_version():
    def relu(opset):
        return _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1])], [_vi("y", [1])], opset=opset)

    assert any("opset 21 outside" in e for e in _errors_at(relu(21), "10.14"))
    assert _errors_at(relu(24), "10.15") == [] and any("opset 25" in e for e in _errors_at(relu(25), "11.4"))
    assert _errors_at(relu(25), "11.5") == []


def test_slice_axes_as_initializer_only_before_10_15():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["x", "st", "en", "s"], ["y"]),
    ]
    inits = [helper.make_tensor(n, TensorProto.INT64, [1], [0]) for n in ("st", "en")]
    m = _model(nodes, [_vi("x", ["b", 4])], [_vi("y", None)], inits)
    assert any("'axes' must be an initializer before TensorRT 10.15" in e for e in _errors_at(m, "10.14"))
    assert _errors_at(m, "10.15") == []


def test_topk_k_may_be_computed_but_is_limited_and_must_be_sorted():
    k = helper.make_tensor("k", TensorProto.INT64, [1], [5000])
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"])]
    m = _model(nodes, [_vi("x", ["b", 8000])], [_vi("v", None), _vi("i", None)], [k])
    assert any("K=5000" in e for e in _errors(m))
    computed = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("TopK", ["x", "s"], ["v", "i"], sorted=0),
    ]
    errs = _errors(_model(computed, [_vi("x", ["b", 8])], [_vi("v", None), _vi("i", None)]))
    assert len(errs) == 1 and "TopK with sorted=0 is not supported" in errs[0]  # a computed K is fine


def test_qdq_scales_may_be_computed_zero_points_must_be_zero():
    nodes = [helper.make_node("Abs", ["x"], ["sc"]), helper.make_node("QuantizeLinear", ["x", "sc"], ["y"])]
    m = _model(nodes, [_vi("x", ["b", 4])], [_vi("y", None, TensorProto.INT8)])
    assert _errors(m) == []


def test_subgraphs_and_local_functions_are_checked_and_functions_are_not_plugins():
    then = helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["a", "b", "c"])], "t", [], [_vi("a", None)]
    )
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["a"])], "e", [], [_vi("a", None)])
    m = _model(
        [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        [_vi("c", [], TensorProto.BOOL), _vi("x", [4])],
        [_vi("y", None)],
    )
    assert any("static Q/DQ" in e for e in _errors(m))  # found inside the If body
    fn = helper.make_function(
        "local",
        "Twice",
        ["x"],
        ["y"],
        [helper.make_node("Add", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 18)],
    )
    m = _model([helper.make_node("Twice", ["x"], ["y"], domain="local")], [_vi("x", [4])], [_vi("y", [4])])
    m.opset_import.append(helper.make_opsetid("local", 1))
    m.functions.append(fn)
    assert _errors(m) == []
    bad_fn = helper.make_function(
        "local",
        "Twice",
        ["x"],
        ["y"],
        [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[1])],
        [helper.make_opsetid("", 18)],
    )
    del m.functions[:]
    m.functions.append(bad_fn)
    assert any("Indices" in e for e in _errors(m))  # nodes inside local functions are checked


def test_documented_limits_uint8_resize_scatternd_maxpool():
    m = _model(
        [
            helper.make_node("Cast", ["x"], ["y"], to=TensorProto.UINT8),
            helper.make_node("Cast", ["y"], ["z"], to=TensorProto.FLOAT),
        ],
        [_vi("x", [4])],
        [_vi("z", [4])],
    )
    assert any("uint8 only as a network input or output" in e for e in _errors(m))
    m = _model(
        [helper.make_node("Resize", ["x", "", "s"], ["y"], antialias=1)],
        [_vi("x", [1, 1, 4, 4])],
        [_vi("y", None)],
        [helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])],
    )
    assert any("antialias" in e for e in _errors(m))
    m = _model(
        [helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction="add")],
        [_vi("x", [4]), _vi("i", [1, 1], TensorProto.INT64), _vi("u", [1])],
        [_vi("y", [4])],
    )
    assert any("reduction" in e for e in _errors(m))


def test_trt_version_is_validated():
    from capsdeploy.errors import UsageError

    relu = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1])], [_vi("y", [1])])
    with pytest.raises(UsageError, match="TensorRT 10 or 11"):
        check_tensorrt_compat(relu, "9.2")
    assert check_tensorrt_compat(relu, "10.7.0.23") == []
