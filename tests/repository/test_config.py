"""config.pbtxt: written by export, parsed with Triton's own ModelConfig schema, checked
against the model files, rendered as Triton's /config endpoint renders it."""

import json

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from capsdeploy.errors import UsageError
from capsdeploy.repository import CAPSNET, DECODER, config_to_json, find_models, parse_config
from tests.helpers import capsdeploy
from tests.helpers.serving import export_repo


@pytest.fixture(scope="module")
def repo(tiny_run, tmp_path_factory):
    return export_repo(
        tiny_run,
        tmp_path_factory.mktemp("r") / "repo",
        max_batch_size=32,
        instances=2,
        preferred_batch_sizes=(8, 16),
    )


def test_export_writes_triton_layout_that_parses_as_model_config(repo):
    assert sorted(p.name for p in repo.iterdir()) == [CAPSNET, DECODER]
    for name in (CAPSNET, DECODER):
        assert (repo / name / "1" / "model.onnx").is_file()
        cfg = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert cfg.name == name and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 32
        assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 16]
        assert cfg.instance_group[0].count == 2
    caps = parse_config((repo / CAPSNET / "config.pbtxt").read_text())
    assert [(t.name, list(t.dims)) for t in caps.input] == [("image", [1, 28, 28])]
    assert [(t.name, list(t.dims)) for t in caps.output] == [("scores", [10]), ("poses", [10, 8])]
    dec = parse_config((repo / DECODER / "config.pbtxt").read_text())
    assert [(t.name, list(t.dims)) for t in dec.input] == [("poses", [10, 8])]
    assert [(t.name, list(t.dims)) for t in dec.output] == [("reconstruction", [784])]
    assert [m.name for m in find_models(repo)] == [CAPSNET, DECODER]


def test_unknown_fields_and_bad_values_are_refused():
    with pytest.raises(UsageError, match="not a valid Triton ModelConfig"):
        parse_config('name: "capsnet"\nmax_batch_sise: 8\n')
    with pytest.raises(UsageError, match="not a valid Triton ModelConfig"):
        parse_config('name: "capsnet"\nmax_batch_size: "eight"\n')


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('name: "capsnet"', 'name: "other"'), "differs from its directory"),
        (
            lambda t: t.replace("preferred_batch_size: 16", "preferred_batch_size: 64"),
            "outside 1..max_batch_size",
        ),
        (lambda t: t.replace("dims: 28\n  dims: 28", "dims: 28\n  dims: 27"), "config dims"),
        (lambda t: t.replace("TYPE_FP32", "TYPE_INT64", 1), "config says int64"),
        (lambda t: t.replace('name: "scores"', 'name: "logits"'), "not in model.onnx"),
    ],
)
def test_semantic_checks_protobuf_cannot_make(repo, tmp_path, edit, message):
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    cfg = copy / CAPSNET / "config.pbtxt"
    text = cfg.read_text()
    assert edit(text) != text, "the edit must change the config"
    cfg.write_text(edit(text))
    with pytest.raises(UsageError, match=message):
        find_models(copy)


def test_config_json_renders_64_bit_integers_as_numbers(repo):
    doc = config_to_json(parse_config((repo / CAPSNET / "config.pbtxt").read_text()))
    policy = doc["dynamic_batching"]["default_queue_policy"]
    assert policy["default_timeout_microseconds"] == 30_000_000  # uint64: a string in plain protobuf JSON
    assert doc["max_batch_size"] == 32 and doc["input"][0]["dims"] == [1, 28, 28]
    assert doc["input"][0]["data_type"] == "TYPE_FP32" and "is_shape_tensor" in doc["input"][0]


def test_export_cli_json_refuses_to_clobber_and_leaves_nothing_on_failure(tiny_run, tmp_path):
    tmp_path = tmp_path / "out"
    out = tmp_path / "repo"
    proc = capsdeploy(
        "export", "--format", "triton", "--checkpoint", tiny_run, "--output", out, "--json", "-", check=True
    )
    report = json.loads(proc.stdout)
    assert set(report["models"]) == {CAPSNET, DECODER} and report["batching"]["max_batch_size"] == 64
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    proc = capsdeploy("export", "--format", "triton", "--checkpoint", tiny_run, "--output", out)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    proc = capsdeploy(
        "export", "--format", "triton", "--checkpoint", tmp_path / "nope", "--output", tmp_path / "r2"
    )
    assert proc.returncode == 2 and "no such run directory" in proc.stderr
    proc = capsdeploy(
        "export",
        "--format",
        "triton",
        "--checkpoint",
        tiny_run,
        "--output",
        tmp_path / "r3",
        "--max-batch-size",
        8,
        "--preferred-batch-sizes",
        "4,16",
    )
    assert proc.returncode == 2 and "outside 1..8" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging directories left behind


def _copy_repo(repo, tmp_path):
    import shutil

    dest = tmp_path / "repo"
    shutil.copytree(repo, dest)
    return dest


@pytest.mark.parametrize("bad", ["0", "01", "007", "abc"])
def test_version_folders_follow_tritons_rules(repo, tmp_path, bad):
    """Triton reads positive integers without leading zeros as versions and ignores the rest;
    the old code loaded "0" and "01" as versions (here they would have outranked nothing, so
    the model becomes a repository without a version: refused)."""
    dest = _copy_repo(repo, tmp_path)
    (dest / CAPSNET / "1").rename(dest / CAPSNET / bad)
    with pytest.raises(UsageError, match="no version directory .a positive integer without leading zeros"):
        find_models(dest)


def test_leading_zero_folder_never_outranks_a_version(repo, tmp_path):
    import shutil

    dest = _copy_repo(repo, tmp_path)
    shutil.copytree(dest / CAPSNET / "1", dest / CAPSNET / "02")
    entry = next(e for e in find_models(dest) if e.name == CAPSNET)
    assert entry.version == "1"


def test_newest_version_without_its_file_is_refused_not_skipped(repo, tmp_path):
    """Triton loads the newest version and fails when its file is missing; the old code quietly
    served an older version instead."""
    dest = _copy_repo(repo, tmp_path)
    (dest / CAPSNET / "3").mkdir()
    with pytest.raises(UsageError, match="version 3 .* has no model.onnx"):
        find_models(dest)


def test_version_policy_specific_picks_a_listed_version(repo, tmp_path):
    import shutil

    dest = _copy_repo(repo, tmp_path)
    shutil.copytree(dest / CAPSNET / "1", dest / CAPSNET / "2")
    (dest / CAPSNET / "3").mkdir()  # not named by the policy: never looked at
    cfg = dest / CAPSNET / "config.pbtxt"
    cfg.write_text(cfg.read_text() + "\nversion_policy { specific { versions: [1, 2] } }\n")
    entry = next(e for e in find_models(dest) if e.name == CAPSNET)
    assert entry.version == "2"


def test_config_is_normalized_as_triton_returns_it(repo):
    """/config (and gRPC ModelConfig) return the config as Triton completes it; the old code
    returned the file as written (KIND_AUTO, no backend, no version_policy, unnamed groups)."""
    from capsdeploy.repository import normalize_config

    entry = next(e for e in find_models(repo) if e.name == CAPSNET)
    doc = config_to_json(normalize_config(entry.config, on_gpu=False))
    assert doc["backend"] == "onnxruntime" and doc["platform"] == "onnxruntime_onnx"
    assert doc["default_model_filename"] == "model.onnx"
    assert doc["version_policy"] == {"latest": {"num_versions": 1}}
    assert doc["instance_group"][0]["name"] == f"{CAPSNET}_0"
    assert doc["instance_group"][0]["kind"] == "KIND_CPU" and doc["instance_group"][0]["count"] == 2
    gpu = config_to_json(normalize_config(entry.config, on_gpu=True))
    assert gpu["instance_group"][0]["kind"] == "KIND_GPU" and gpu["instance_group"][0]["gpus"] == [0]
    bare = parse_config('name: "m"\nbackend: "onnxruntime"\nmax_batch_size: 16\ndynamic_batching {}\n')
    doc = config_to_json(normalize_config(bare))
    assert doc["platform"] == "onnxruntime_onnx"
    assert doc["dynamic_batching"]["preferred_batch_size"] == [16]
    assert doc["instance_group"] == [
        {**doc["instance_group"][0], "name": "m", "kind": "KIND_CPU", "count": 1}
    ]
    assert not bare.instance_group  # the file's own config is left as written
