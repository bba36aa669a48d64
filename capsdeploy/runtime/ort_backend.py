"""ONNX Runtime backend: CPU, or CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..contract import ModelMetadata
from ..errors import CapsDeployError, UsageError
from .backend import Backend, TensorSpec

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int64)": "int64",
}
_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OrtBackend(Backend):
    """One ONNX Runtime session; ``clone()`` shares it (``run`` is thread-safe)."""

    name = "ort"

    def __init__(
        self,
        model_path: str | Path,
        providers: list[str] | None = None,
        threads: int | None = None,
        optimization: str = "all",
        optimized_model_path: str | None = None,
    ):
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise UsageError(f"{path}: no such ONNX file; create one with `capsdeploy export`")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[optimization])
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        if optimized_model_path:
            opts.optimized_model_filepath = optimized_model_path
        self.providers = providers or ["CPUExecutionProvider"]
        missing = set(self.providers) - set(ort.get_available_providers())
        if missing:
            raise UsageError(
                f"ONNX Runtime providers {sorted(missing)} are not available here "
                f"(available: {ort.get_available_providers()}); install onnxruntime-gpu for CUDA/TensorRT"
            )
        # FP32 means FP32: the CUDA provider computes FP32 matmuls and convolutions in TF32
        # unless told not to, and an FP32 engine is judged at atol 1e-5.
        with_options = [(p, {"use_tf32": "0"}) if p == "CUDAExecutionProvider" else p for p in self.providers]
        self.session = _open(ort, path, opts, with_options)
        self.metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map)
        self.int8_kernels_refused = (
            optimization in ("extended", "all")
            and "CUDAExecutionProvider" not in self.providers
            and self.metadata is not None
            and self.metadata.precision == "int8"
            and not cpu_has_vnni()
        )
        if self.int8_kernels_refused:
            # ORT fuses Q/DQ pairs into integer kernels at "extended"; on x86 without VNNI those
            # multiply u8 x s8 with VPMADDUBSW, whose int16 sums saturate (ONNX Runtime's
            # quantization docs). Measured here: top-1 agreement 96.2% fused vs 100% unfused on
            # real digits. "basic" keeps the Q/DQ nodes, computing the same quantized values
            # exactly in float. Only this rare case opens the file twice.
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            self.session = _open(ort, path, opts, with_options)
        self.path = path
        # get_available_providers() lists CUDA even where cuDNN or the CUDA libraries fail to
        # load; the session then runs on CPU. Refuse that instead of mislabelling it.
        inactive = [p for p in self.providers if p not in self.session.get_providers()]
        if inactive:
            raise UsageError(
                f"ONNX Runtime could not activate {inactive} (active: {self.session.get_providers()}): "
                "its CUDA or cuDNN libraries failed to load; install the CUDA and cuDNN versions this "
                "onnxruntime-gpu build needs, or use --engine ort (CPU)"
            )
        self._math = provider_math(self.session.get_providers())
        # On CUDA, bind outputs to device memory: ORT then skips its own staging copies.
        self._iobinding = "CUDAExecutionProvider" in self.session.get_providers()

        self._inputs = [_spec(i) for i in self.session.get_inputs()]
        self._outputs = [_spec(o) for o in self.session.get_outputs()]

    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    @property
    def max_batch_size(self) -> int | None:
        first = self._inputs[0].shape[0] if self._inputs and self._inputs[0].shape else None
        return first if isinstance(first, int) else None

    @property
    def math(self) -> str:
        return self._math

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._outputs]
        if self._iobinding:
            binding = self.session.io_binding()
            for k, v in feeds.items():
                binding.bind_cpu_input(k, np.ascontiguousarray(v))
            for n in names:
                binding.bind_output(n, "cuda")
            self.session.run_with_iobinding(binding)
            values = binding.copy_outputs_to_cpu()
        else:
            values = self.session.run(names, feeds)
        return dict(zip(names, values, strict=True))

    def close(self) -> None:
        self.session = None


def provider_math(active_providers: list[str], environ: Mapping[str, str] | None = None) -> str:
    """The arithmetic FP32 tensors get with these providers active. The CUDA provider is opened
    with ``use_tf32=0``; the TensorRT provider has no such option (onnxruntime issue #26029) and
    leaves TensorRT's BuilderFlag.TF32 on, so a session with it reports TF32 unless the process
    runs with NVIDIA_TF32_OVERRIDE=0, the one switch that turns it off."""
    env = os.environ if environ is None else environ
    if "TensorrtExecutionProvider" in active_providers and env.get("NVIDIA_TF32_OVERRIDE") != "0":
        return "TF32 allowed"
    return "FP32 (TF32 off)"


def cpu_has_vnni(cpuinfo: str | None = None) -> bool:
    """Whether this x86 CPU has VNNI (AVX512-VNNI or AVX-VNNI); True off x86 or when unknown."""
    import platform

    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return True
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True
    flags = next(
        (line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None
    )
    if flags is None:
        return True
    return bool({"avx512_vnni", "avx_vnni"} & set(flags))


def _open(ort, path: Path, opts, providers):
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
        raise CapsDeployError(
            f"{path}: ONNX Runtime cannot load it ({type(e).__name__}: {str(e).splitlines()[0][:300]}); "
            "the file is corrupt, truncated or not an ONNX model; export it again"
        ) from None


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), shape)
