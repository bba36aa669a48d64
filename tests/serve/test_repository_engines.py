"""A repository served on a named reduced-precision engine: the main model runs on that engine,
the decoder (exported FP32 in every repository) on the same runtime's FP32 engine (served:
tests/serve/test_openvino_repo.py)."""

import pytest

from capsdeploy.runtime.engines import engine_spec


@pytest.mark.parametrize(
    "engine,plain", [("ov-int8", "ov"), ("ort-int8", "ort"), ("ort-cuda-int8", "ort-cuda"), ("trt-fp16", "trt"),
                     ("ov-bf16", "ov-bf16"), ("ort", "ort")],
)  # fmt: skip
def test_each_engine_names_its_runtimes_fp32_engine(engine, plain):
    assert engine_spec(engine).fp32_engine == plain

