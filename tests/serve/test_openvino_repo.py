"""`export --format triton --platform openvino`: a config Triton's OpenVINO backend loads (parsed
with Triton's ModelConfig, parameter keys from that backend's source), served by `capsdeploy serve`
on OpenVINO with the config's settings."""

import numpy as np
import pytest

from capsdeploy.repository import parse_config
from capsdeploy.runtime.ort_backend import OrtBackend
from capsdeploy.runtime.ov_backend import OvBackend
from capsdeploy.serve.models import load_repository
from tests.helpers import capsdeploy
from tests.helpers.serving import start_server

# What triton-inference-server/openvino_backend reads from `parameters` (src/openvino.cc,
# ParseParameters); anything else it ignores, so our own keys carry the capsdeploy. prefix.
TRITON_OV_KEYS = {
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "COMPILATION_NUM_THREADS",
    "HINT_BF16",
    "SKIP_OV_DYNAMIC_BATCHSIZE",
    "ENABLE_BATCH_PADDING",
    "RESHAPE_IO_LAYERS",
    "TARGET_DEVICE",
    "CPU_EXTENSION_PATH",
}


@pytest.fixture(scope="module")
def ov_repo(tiny_run, tmp_path_factory):
    repo = tmp_path_factory.mktemp("ovrepo") / "repo"
    capsdeploy(
        "export", "--format", "triton", "--platform", "openvino", "--checkpoint", tiny_run,
        "--output", repo, "--max-batch-size", 16, check=True,
    )  # fmt: skip
    return repo


def test_the_config_is_one_tritons_openvino_backend_loads(ov_repo):
    for name in ("capsnet", "capsnet_decoder"):
        cfg = parse_config((ov_repo / name / "config.pbtxt").read_text())
        assert cfg.backend == "openvino" and not cfg.platform
        # The backend reads model.xml unless told otherwise.
        assert cfg.default_model_filename == "model.onnx" and (ov_repo / name / "1" / "model.onnx").is_file()
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        ours = {k for k in params if k.startswith("capsdeploy.")}
        assert set(params) - ours <= TRITON_OV_KEYS
        # It fixes the batch at max_batch_size and rejects smaller batches without padding.
        assert params["ENABLE_BATCH_PADDING"] == "YES" and cfg.max_batch_size == 16
        assert params["PERFORMANCE_HINT"] == "LATENCY" and "HINT_BF16" not in params
        assert params["capsdeploy.ov.inference_precision"] == "f32"
        assert [g.kind for g in cfg.instance_group] == [cfg.instance_group[0].KIND_CPU]


def test_serve_loads_it_on_openvino_with_its_settings(ov_repo):
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    models = load_repository(ov_repo, "auto")
    try:
        caps = models["capsnet"]
        assert isinstance(caps.backend, OvBackend) and caps.platform == "openvino"
        assert caps.backend.options["performance_hint"] == "LATENCY"
        assert caps.backend.options["inference_precision"] == "f32"
        got = caps.batcher.infer({"image": x})
    finally:
        for m in models.values():
            m.close(0)
    want = OrtBackend(ov_repo / "capsnet" / "1" / "model.onnx").infer({"image": x})
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5, rtol=1e-4)


def test_bf16_is_written_as_tritons_hint(tiny_run, tmp_path):
    from capsdeploy.runtime.ov_backend import device_capabilities

    repo = tmp_path / "repo"
    proc = capsdeploy(
        "export", "--format", "triton", "--platform", "openvino", "--ov-precision", "bf16",
        "--checkpoint", tiny_run, "--output", repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    params = parse_config((repo / "capsnet" / "config.pbtxt").read_text()).parameters
    assert params["HINT_BF16"].string_value == "YES"
    if "BF16" in device_capabilities():
        models = load_repository(repo, "auto")
        try:
            assert models["capsnet"].backend.compute_precision == "bf16"
        finally:
            for m in models.values():
                m.close(0)


def test_capsdeploy_serve_answers_tritonclient_from_an_openvino_repository(ov_repo, tmp_path):
    import tritonclient.http as httpclient

    srv = start_server([ov_repo], tmp_path)
    try:
        client = httpclient.InferenceServerClient(srv.host_port)
        meta = client.get_model_metadata("capsnet")
        assert meta["platform"] == "openvino"
        x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
        inp = httpclient.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        scores = client.infer("capsnet", [inp]).as_numpy("scores")
        assert scores.shape == (1, 10)
        want = OrtBackend(ov_repo / "capsnet" / "1" / "model.onnx").infer({"image": x})["scores"]
        np.testing.assert_allclose(scores, want, atol=1e-5, rtol=1e-4)
    finally:
        assert srv.stop() == 0, srv.log.read_text()


def test_an_int8_openvino_repository_serves_its_int8_model_and_fp32_decoder(tiny_run, tmp_path):
    repo = tmp_path / "repo"
    capsdeploy(
        "export", "--format", "triton", "--platform", "openvino", "--precision", "int8", "--calib-samples", 16,
        "--checkpoint", tiny_run, "--output", repo, check=True,
    )  # fmt: skip
    # auto, and the INT8 engine named: the decoder (FP32 in every repository) runs on `ov` then.
    for engine in ("auto", "ov-int8"):
        models = load_repository(repo, engine)
        try:
            assert models["capsnet"].backend.metadata.precision == "int8"
            assert models["capsnet_decoder"].backend.metadata.precision == "fp32"
            x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
            assert models["capsnet"].batcher.infer({"image": x})["scores"].shape == (2, 10)
        finally:
            for m in models.values():
                m.close(0)


def test_more_instances_get_as_many_openvino_streams(tiny_run, tmp_path):
    repo = tmp_path / "repo"
    capsdeploy(
        "export", "--format", "triton", "--platform", "openvino", "--instances", 2, "--checkpoint", tiny_run,
        "--output", repo, check=True,
    )  # fmt: skip
    params = parse_config((repo / "capsnet" / "config.pbtxt").read_text()).parameters
    assert (
        params["NUM_STREAMS"].string_value == "2" and params["PERFORMANCE_HINT"].string_value == "THROUGHPUT"
    )
    models = load_repository(repo, "auto")
    try:
        be = models["capsnet"].backend
        assert models["capsnet"].batcher.workers == 2 and int(be.compiled.get_property("NUM_STREAMS")) == 2
    finally:
        for m in models.values():
            m.close(0)
