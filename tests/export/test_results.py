"""The exporters' typed results: each field carries what was written, and ``to_dict()`` is
exactly the JSON report `capsdeploy export --json` writes (its keys, in their order, as
before the results were typed)."""

import json

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from capsdeploy.cli.main import cli
from capsdeploy.export.results import RepositoryExport, RepositoryModel
from capsdeploy.export.trt_compat import Finding
from capsdeploy.fileio import to_json
from capsdeploy.repository import BatchingOptions
from capsdeploy.repository.config import TensorDecl

# The --json keys of each format, as the dict-returning exporters wrote them.
ONNX_KEYS = ["output", "checkpoint", "summary", "precision", "routing_iters", "warnings", "tensorrt_findings"]
PLAN_KEYS = ["output", "cache_hit", "cache_key", "sidecar"]
REPO_KEYS = [
    "checkpoint",
    "precision",
    "routing_iters",
    "batching",
    "models",
    "warnings",
    "tensorrt_findings",
    "repository",
]


def _spy(monkeypatch, module, name):
    """Wrap ``module.name`` so the test sees the typed result the CLI rendered."""
    real, seen = getattr(module, name), []

    def spy(*args, **kw):
        seen.append(real(*args, **kw))
        return seen[-1]

    monkeypatch.setattr(module, name, spy)
    return seen


def _cli(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output + result.stderr
    return result


def _as_json(result) -> dict:
    return json.loads(to_json(result.to_dict()))


def test_onnx_export_result_is_the_cli_report(tiny_run, tmp_path, monkeypatch):
    import capsdeploy.export.onnx_export as onnx_export

    seen = _spy(monkeypatch, onnx_export, "export_onnx")
    out = tmp_path / "m.onnx"
    run = _cli("export", "--checkpoint", tiny_run, "-o", out, "--routing-iters", 2, "--json", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    (result,) = seen
    assert list(doc) == ONNX_KEYS and doc == _as_json(result)
    assert result.output == str(out) and result.checkpoint == str(tiny_run)
    assert result.routing_iters == 2 and result.precision == "fp32" and result.tensorrt_checked
    assert "2 routing iterations" in result.warnings[0]  # trained with 3
    assert result.summary["inputs"][0]["name"] == "image" and result.summary["size_bytes"] == out.stat().st_size
    assert result.tensorrt_findings == [] and not result.tensorrt_errors
    assert run.stdout == result.describe() + "\n" and "warning: exporting with 2" in run.stderr


def test_a_plan_build_result_is_the_cli_report(tmp_path, monkeypatch):
    import capsdeploy.runtime.trt.build as build

    class FakeEnv:  # TensorRT is faked: the probe and the build call; the rest is ours
        trt = None
        version, gpu_name, compute_capability = "10.7.0", "NVIDIA H100", "9.0"

    monkeypatch.setattr(build, "require_tensorrt", lambda: FakeEnv())
    monkeypatch.setattr(build, "_build_plan", lambda *a: b"plan")
    model = tmp_path / "m.onnx"
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["image"], ["scores"])], "g", [x], [y])), model)
    seen = _spy(monkeypatch, build, "build_engine")
    args = ["export", "--format", "trt", "--model", model, "-o", tmp_path / "m.plan", "--version-compatible"]
    runs = [_cli(*args, "--json", tmp_path / f"{i}.json") for i in range(2)]
    first, again = seen
    for i, (run, result) in enumerate(zip(runs, seen, strict=True)):
        doc = json.loads((tmp_path / f"{i}.json").read_text())
        assert list(doc) == PLAN_KEYS and doc == _as_json(result)
        assert run.stdout == result.describe() + "\n"
    assert not first.cache_hit and again.cache_hit and first.cache_key == again.cache_key
    assert first.output == str(tmp_path / "m.plan") and first.tensorrt_version == "10.7.0"
    assert first.compatibility["version_compatible"] is True
    assert json.loads(to_json(first.sidecar)) == json.loads((tmp_path / "m.plan.json").read_text())
    assert "reused from the engine cache" in runs[1].stdout and "or a later version" in runs[1].stdout


def test_repository_result_is_the_cli_report(tiny_run, tmp_path, monkeypatch):
    import capsdeploy.export.triton_repo as triton_repo

    seen = _spy(monkeypatch, triton_repo, "export_triton")
    repo = tmp_path / "repo"
    run = _cli(
        "export", "--format", "triton", "--checkpoint", tiny_run, "-o", repo,
        "--max-batch-size", 16, "--preferred-batch-sizes", "4,8", "--json", tmp_path / "r.json",
    )  # fmt: skip
    doc = json.loads((tmp_path / "r.json").read_text())
    (result,) = seen
    assert list(doc) == REPO_KEYS and doc == _as_json(result)
    assert result.repository == str(repo) and result.engine is None and result.routing_iters == 3
    assert isinstance(result.batching, BatchingOptions) and result.batching.max_batch_size == 16
    assert list(result.batching.preferred_batch_sizes) == [4, 8]
    caps = result.models["capsnet"]
    assert caps.platform == "onnxruntime_onnx" and caps.tensorrt_compatibility is None
    assert caps.inputs == [TensorDecl("image", "float32", (1, 28, 28))]
    assert [t.name for t in caps.outputs] == ["scores", "poses"]
    # Every file named is under the repository (not the staging directory it was written in).
    for m in result.models.values():
        assert m.files[0].endswith("config.pbtxt")
        assert all(f.startswith(str(repo)) and (tmp_path / f).is_file() for f in m.files)
    assert doc["models"]["capsnet"]["inputs"] == {"image": ["float32", [1, 28, 28]]}
    assert run.stdout == result.describe() + "\n" and "preferred [4, 8]" in run.stdout


@pytest.mark.parametrize("engine", [None, "ov"])
def test_repository_report_names_a_tuned_engine_and_a_plan_compatibility_only_when_present(engine):
    compat = {"version_compatible": False, "exclude_lean_runtime": False, "runs_on": "TensorRT 10.7.0 exactly"}
    plan = RepositoryModel(
        "tensorrt_plan", [TensorDecl("image", "float32", (1, 28, 28))], [], ["r/capsnet/config.pbtxt"], compat
    )
    onnx_model = RepositoryModel("onnxruntime_onnx", [], [], ["r/d/config.pbtxt"])
    finding = Finding("error", "opset 21", "n", "Conv")
    report = RepositoryExport(
        "r", "run", "fp32", 3, BatchingOptions(), {"capsnet": plan, "d": onnx_model}, [], [finding], engine
    )
    doc = _as_json(report)
    assert list(doc) == REPO_KEYS + (["engine"] if engine else [])
    assert doc["models"]["capsnet"]["tensorrt_compatibility"] == compat
    assert "tensorrt_compatibility" not in doc["models"]["d"]
    assert doc["tensorrt_findings"] == [{"level": "error", "message": "opset 21", "node": "n", "op": "Conv"}]
    assert ("for the tuned engine ov" in report.describe()) == bool(engine)
