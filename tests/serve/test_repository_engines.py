"""A repository served on a named reduced-precision engine: the main model runs on that engine,
the decoder (exported FP32 in every repository) on the same runtime's FP32 engine."""

import numpy as np
import pytest

from capsdeploy.runtime.engines import engine_spec
from capsdeploy.serve.models import load_repository
from tests.helpers import capsdeploy


@pytest.mark.parametrize(
    "engine,plain", [("ov-int8", "ov"), ("ort-int8", "ort"), ("ort-cuda-int8", "ort-cuda"), ("trt-fp16", "trt"),
                     ("ov-bf16", "ov-bf16"), ("ort", "ort")],
)  # fmt: skip
def test_each_engine_names_its_runtimes_fp32_engine(engine, plain):
    assert engine_spec(engine).fp32_engine == plain


def test_an_int8_repository_serves_on_ov_int8_with_its_fp32_decoder(tiny_run, tmp_path):
    repo = tmp_path / "repo"
    capsdeploy(
        "export", "--format", "triton", "--platform", "openvino", "--precision", "int8", "--calib-samples", 16,
        "--checkpoint", tiny_run, "--output", repo, check=True,
    )  # fmt: skip
    models = load_repository(repo, "ov-int8")
    try:
        assert models["capsnet"].backend.metadata.precision == "int8"
        assert models["capsnet_decoder"].backend.metadata.precision == "fp32"
        x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
        assert models["capsnet"].batcher.infer({"image": x})["scores"].shape == (2, 10)
    finally:
        for m in models.values():
            m.close(0)
