"""Version-compatible plans, without a GPU: the options, the BuilderFlags asked for, what the
sidecar and the repository config say. The build itself is faked (as in test_trt_build.py):
whether TensorRT honours the flags is a GPU check, listed as not run in docs/gpu.md."""

import json
import types

import pytest

from capsdeploy.errors import UsageError
from capsdeploy.export import ExportOptions
from capsdeploy.runtime.trt.build import BuildOptions, compatibility_flags
from tests.helpers import capsdeploy


def _trt(*flags):
    return types.SimpleNamespace(
        __version__="10.7.0", BuilderFlag=types.SimpleNamespace(**{f: f for f in flags})
    )


def test_builder_flags_follow_the_options_and_a_missing_flag_is_named():
    both = _trt("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "TF32")
    assert compatibility_flags(both, BuildOptions()) == []
    assert compatibility_flags(both, BuildOptions(version_compatible=True)) == ["VERSION_COMPATIBLE"]
    opts = BuildOptions(version_compatible=True, exclude_lean_runtime=True)
    assert compatibility_flags(both, opts) == ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    with pytest.raises(UsageError, match="no BuilderFlag.VERSION_COMPATIBLE"):
        compatibility_flags(_trt("TF32"), BuildOptions(version_compatible=True))


def test_sidecar_says_which_kind_of_plan_and_the_cache_keeps_them_apart(fake_builds, tiny_export, tmp_path):
    from capsdeploy.runtime.trt.build import build_engine

    tiny_export(tmp_path / "m.onnx")
    plain = build_engine(tmp_path / "m.onnx", tmp_path / "plain.plan", BuildOptions())
    vc = build_engine(tmp_path / "m.onnx", tmp_path / "vc.plan", BuildOptions(version_compatible=True))
    assert plain.cache_key != vc.cache_key and not vc.cache_hit and len(fake_builds) == 2
    assert plain.sidecar["compatibility"]["version_compatible"] is False
    assert "TensorRT 10.7.0 exactly" in plain.sidecar["compatibility"]["runs_on"]
    doc = json.loads((tmp_path / "vc.plan.json").read_text())["compatibility"]
    assert doc["version_compatible"] is True and doc["exclude_lean_runtime"] is False
    assert "or a later version" in doc["runs_on"] and "compute capability 9.0" in doc["runs_on"]


def test_repository_config_says_what_a_triton_container_needs(fake_builds, tiny_run, tmp_path):
    from capsdeploy.export.triton_repo import export_triton
    from capsdeploy.repository import BatchingOptions
    from capsdeploy.repository.config import parse_config
    from capsdeploy.runtime.trt.build import repository_plan_builder

    builder = repository_plan_builder(BuildOptions(version_compatible=True, use_engine_cache=False))
    report = export_triton(
        tiny_run, tmp_path / "repo", ExportOptions(), BatchingOptions(max_batch_size=8), "trt", builder
    )
    cfg = parse_config((tmp_path / "repo" / "capsnet" / "config.pbtxt").read_text())
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert cfg.platform == "tensorrt_plan" and params["capsdeploy.tensorrt_version_compatible"] == "true"
    assert (
        params["capsdeploy.tensorrt_version"] == "10.7.0"
        and "or a later version" in params["capsdeploy.tensorrt_runs_on"]
    )
    assert report.models["capsnet"].tensorrt_compatibility["version_compatible"] is True
    sidecar = json.loads((tmp_path / "repo" / "capsnet" / "1" / "model.plan.json").read_text())
    assert sidecar["compatibility"]["version_compatible"] is True
    with pytest.raises(UsageError, match="drop --exclude-lean-runtime"):
        repository_plan_builder(BuildOptions(version_compatible=True, exclude_lean_runtime=True))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--format", "trt", "--exclude-lean-runtime"], "add --version-compatible"),
        (["--format", "onnx", "--version-compatible"], "apply to --format trt or triton"),
        (["--format", "triton", "--version-compatible"], "add --platform trt"),
    ],
)
def test_cli_refuses_compatibility_flags_where_they_mean_nothing(tiny_run, tmp_path, args, words):
    proc = capsdeploy("export", "--checkpoint", tiny_run, "-o", tmp_path / "out", *args)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
