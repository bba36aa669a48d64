"""`capsdeploy export`'s flag handling: flags -> ExportOptions / BuildOptions, and the refusals
each --format makes before any export work (one line, exit 2)."""

import pytest
from click.testing import CliRunner

from capsdeploy.cli import export_cmd as cmd
from capsdeploy.cli.main import cli
from capsdeploy.errors import UsageError


def _flags(**over):
    """The flags as click hands them to export_cmd, at their defaults."""
    ctx = cmd.export_cmd.make_context("export", ["-o", "x"])
    params = dict(ctx.params)
    for name in ("checkpoint", "onnx_model", "fmt", "output", "strict_trt", "json_dest"):
        params.pop(name)
    return {**params, **over}


def test_export_flags_become_export_options():
    opts = cmd._export_options(
        _flags(io_dtype="fp16", precision="fp16", no_simplify=True, int8_ops=" Conv, MatMul ,"), for_tensorrt=False
    )
    assert opts.io_dtype == "float16" and not opts.simplify and opts.int8_ops == ("Conv", "MatMul")
    assert (opts.precision, opts.opset, opts.calib_samples, opts.batch) == ("fp16", 18, 512, None)
    # A tune file's export settings win over the flags.
    tuned = cmd._export_options(_flags(), False, overrides={"precision": "int8", "int8_ops": "Conv,PredictionMatMul"})
    assert tuned.precision == "int8" and tuned.int8_ops == ("Conv", "PredictionMatMul")
    assert cmd._export_options(_flags(int8_target="cpu"), for_tensorrt=False).int8_target == "cpu"
    with pytest.raises(UsageError, match="TensorRT needs --int8-target trt"):
        cmd._export_options(_flags(int8_target="cpu"), for_tensorrt=True)


def test_trt_flags_become_checked_build_options():
    build = cmd._build_options(_flags(min_batch=2, opt_batch=8, max_batch=64, workspace_mib=512, no_engine_cache=True))
    assert (build.min_batch, build.opt_batch, build.max_batch, build.workspace_mib) == (2, 8, 64, 512)
    assert not build.use_engine_cache and not build.version_compatible
    with pytest.raises(UsageError, match="add --version-compatible"):
        cmd._build_options(_flags(exclude_lean_runtime=True))


def test_repository_target_from_the_flags():
    target = cmd._repository_target(_flags(platform="openvino", ov_precision="default", instances=2))
    assert target.platform == "openvino" and target.batching.instances == 2 and target.engine is None
    assert target.ov_options == {"inference_precision": None, "performance_hint": "LATENCY"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--checkpoint", "run", "--tuned", "{tune}"], "add --format triton"),
        (["--format", "trt", "--checkpoint", "run", "--tuned", "{tune}"], "add --format triton"),
        ([], "--format onnx needs --checkpoint DIR"),
        (["--format", "triton"], "--format triton needs --checkpoint DIR"),
        (["--format", "trt", "--checkpoint", "run", "--precision", "int8", "--int8-target", "cpu"], "TensorRT"),
        (["--format", "triton", "--platform", "trt", "--int8-target", "cpu"], "--int8-target trt"),
    ],
)
def test_each_format_refuses_flags_it_cannot_honour(tmp_path, args, words):
    tune = tmp_path / "tune.json"
    tune.write_text("{}")
    args = [a.replace("{tune}", str(tune)) for a in args]
    result = CliRunner().invoke(cli, ["export", "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and words in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_strict_trt_fails_an_onnx_export_with_tensorrt_errors(tiny_run, tmp_path):
    # Opset 21 is past TensorRT 10.0's parser (9..20): the check finds an error.
    args = ["export", "--checkpoint", str(tiny_run), "-o", str(tmp_path / "m.onnx"), "--opset", "21"]
    lenient = CliRunner().invoke(cli, args)
    assert lenient.exit_code == 0 and "TensorRT check: 1 finding(s)" in lenient.stdout, lenient.stderr
    strict = CliRunner().invoke(cli, [*args, "--strict-trt"])
    assert strict.exit_code == 1 and "TensorRT compatibility check failed (--strict-trt)" in strict.stderr
    assert (tmp_path / "m.onnx").is_file()  # written, as before: --strict-trt only sets the exit code
