"""The Backend base class: one set of input checks for every engine, errors wrapped, clone()."""

import numpy as np
import pytest

from capsdeploy.errors import InferenceError, InvalidInputError, UsageError
from capsdeploy.runtime.backend import Backend, TensorSpec
from capsdeploy.runtime.ort_backend import OrtBackend
from capsdeploy.runtime.ov_backend import OvBackend
from capsdeploy.runtime.torch_backend import TorchBackend


@pytest.fixture(scope="module")
def engines(tiny_export, tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("be") / "m.onnx"
    tiny_export(path)
    return {"ort": OrtBackend(path), "torch": TorchBackend(tiny_run), "ov": OvBackend(path)}


@pytest.mark.parametrize("engine", ["ort", "torch", "ov"])
@pytest.mark.parametrize(
    "feeds, words",
    [
        ({"image": np.zeros((2, 1, 28, 28), np.float64)}, "dtype float64, expected float32"),
        ({"image": np.zeros((2, 1, 28, 28), np.uint8)}, "dtype uint8, expected float32"),
        ({"image": np.zeros((2, 28, 28), np.float32)}, "3 dimensions"),
        ({"image": np.zeros((2, 1, 28, 27), np.float32)}, "axis 3 is 27"),
        ({"image": np.zeros((0, 1, 28, 28), np.float32)}, "empty batch"),
        ({"img": np.zeros((2, 1, 28, 28), np.float32)}, "unknown input(s) ['img']"),
        ({}, "missing input(s) ['image']"),
        ({"image": [[0.0]]}, "expected a numpy array"),
    ],
)
def test_every_engine_refuses_the_same_bad_feeds(engines, engine, feeds, words):
    with pytest.raises(InvalidInputError) as e:
        engines[engine].infer(feeds)
    assert words in str(e.value)
    assert isinstance(e.value, UsageError) and e.value.exit_code == 2


@pytest.mark.parametrize("engine", ["ort", "torch", "ov"])
def test_clone_shares_the_model_and_agrees(engines, engine):
    backend = engines[engine]
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    with backend.clone() as twin:
        np.testing.assert_array_equal(
            twin.infer({"image": x})["scores"], backend.infer({"image": x})["scores"]
        )
    assert backend.infer({"image": x})["scores"].shape == (3, 10)  # closing the clone left the original


class Limited(Backend):
    name = "limited"

    def inputs(self):
        return [TensorSpec("a", "float32", (None, 2)), TensorSpec("b", "uint8", (4, 3))]

    def outputs(self):
        return [TensorSpec("y", "float32", (None,))]

    @property
    def max_batch_size(self):
        return 4

    @property
    def min_batch_size(self):
        return 2

    def _infer(self, feeds):
        if feeds["a"][0, 0] < 0:
            raise RuntimeError("device lost\nsecond line")
        return {"y": feeds["a"].sum(1)}


def test_batch_limits_fixed_batch_and_agreement():
    be = Limited()
    ok = {"a": np.ones((4, 2), np.float32), "b": np.zeros((4, 3), np.uint8)}
    assert be.infer(ok)["y"].tolist() == [2.0] * 4
    with pytest.raises(InvalidInputError, match="batch 5 exceeds this engine's maximum of 4"):
        be.infer({"a": np.ones((5, 2), np.float32), "b": np.zeros((5, 3), np.uint8)})
    with pytest.raises(InvalidInputError, match="below this engine's minimum of 2"):
        be.infer({"a": np.ones((1, 2), np.float32), "b": np.zeros((1, 3), np.uint8)})
    with pytest.raises(InvalidInputError, match="exported with batch 4"):
        be.infer({"a": np.ones((3, 2), np.float32), "b": np.zeros((3, 3), np.uint8)})


def test_engine_errors_are_wrapped_with_their_first_line():
    be = Limited()
    bad = {"a": -np.ones((4, 2), np.float32), "b": np.zeros((4, 3), np.uint8)}
    with pytest.raises(InferenceError, match="limited inference failed: RuntimeError: device lost$") as e:
        be.infer(bad)
    assert isinstance(e.value.__cause__, RuntimeError) and e.value.exit_code == 1


def test_warmup_runs_at_the_smallest_batch_the_engine_takes():
    seen = []

    class Recording(Limited):
        def inputs(self):
            return [TensorSpec("a", "float32", (None, 2))]

        def _infer(self, feeds):
            seen.append(feeds["a"].shape)
            return {"y": feeds["a"].sum(1)}

    Recording().warmup()
    assert seen == [(2, 2)]


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_ort_cuda_that_falls_back_to_cpu_is_refused(tiny_export, tiny_run, tmp_path, monkeypatch):
    """onnxruntime lists CUDA even where its libraries fail to load, then runs on CPU; the
    provider list is faked here as such an install reports it."""
    import onnxruntime as ort

    tiny_export(tmp_path / "m.onnx")
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    with pytest.raises(UsageError, match=r"could not activate \['CUDAExecutionProvider'\]"):
        OrtBackend(tmp_path / "m.onnx", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_vnni_detection_from_cpuinfo():
    from capsdeploy.runtime.ort_backend import cpu_has_vnni

    assert cpu_has_vnni("processor: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert cpu_has_vnni("flags : fpu avx2 avx_vnni\n")
    assert not cpu_has_vnni("flags : fpu sse avx2 avx512f\n")
    assert cpu_has_vnni("no flags line here")  # unknown: do not second-guess ONNX Runtime


def test_int8_files_avoid_fused_integer_kernels_on_cpus_without_vnni(tiny_export, tiny_run, tmp_path, monkeypatch):
    """ORT's fused u8s8 kernels saturate on x86 without VNNI (96% top-1 agreement measured on
    real digits); such CPUs keep the Q/DQ nodes unfused. The decision is checked here."""
    import capsdeploy.runtime.ort_backend as ob

    tiny_export(tmp_path / "q.onnx", precision="int8", calib_samples=32)
    tiny_export(tmp_path / "f.onnx")
    monkeypatch.setattr(ob, "cpu_has_vnni", lambda: False)
    assert OrtBackend(tmp_path / "q.onnx").int8_kernels_refused
    assert not OrtBackend(tmp_path / "f.onnx").int8_kernels_refused
    assert not OrtBackend(tmp_path / "q.onnx", optimization="basic").int8_kernels_refused
    monkeypatch.setattr(ob, "cpu_has_vnni", lambda: True)
    assert not OrtBackend(tmp_path / "q.onnx").int8_kernels_refused
