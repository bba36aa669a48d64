"""The engine registry: every engine name (``<runtime>[-<precision>]``) -> how its backend is
made and which exported file it runs. select, serve, bench, tune and the experiments read this
one table; nothing else lists engines.

A name fixes three things: the runtime (torch, ort, ov, trt), the file it needs (the checkpoint,
or an ONNX export at a precision and INT8 flavour) and the precision it computes in, which picks
the validation tolerance (``ov-bf16`` runs the FP32 file in bfloat16, so it is judged as bf16).
Peers (``peer=True``) are what a user gets without capsdeploy's settings: OpenVINO with its
defaults, ``torch.compile``, bf16 autocast. Bench times them beside our engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

# The INT8 files: ONNX Runtime on CPU gets UINT8 activations in QLinearConv (2.8x the Q/DQ
# file's throughput there); CUDA, TensorRT and OpenVINO get the symmetric Q/DQ file (TensorRT
# requires zero points of 0; OpenVINO's CPU plugin folds Q/DQ pairs into its INT8 kernels).
INT8_CPU_ORT = {"int8_target": "cpu", "int8_format": "qoperator"}
INT8_QDQ = {"int8_target": "trt", "int8_format": "qdq"}


@dataclass(frozen=True)
class EngineSpec:
    name: str
    runtime: str  # torch | ort | ov | trt
    precision: str  # what it computes in: fp32, fp16, bf16, int8 (the tolerance it is judged by)
    file_precision: str = "fp32"  # the exported file it runs ("checkpoint" for torch)
    int8: dict = field(default_factory=dict)  # export options of the INT8 file
    device: str = "cpu"
    options: dict = field(default_factory=dict)  # backend constructor defaults
    peer: bool = False  # what a user gets without capsdeploy (bench --peers)
    summary: str = ""

    @property
    def needs_checkpoint(self) -> bool:
        return self.runtime == "torch"

    def export_options(self) -> dict:
        """The ExportOptions fields of the file this engine runs."""
        return {"precision": self.file_precision, **self.int8}

    def file_tag(self) -> str:
        """A name for its exported file: engines sharing a file share a tag."""
        return "-".join([self.file_precision, *self.int8.values()])

    def make(self, model: str | None = None, checkpoint: str | None = None, **kw):
        """The backend, on ``model`` (ONNX or plan) or, for torch, on ``checkpoint``."""
        opts = {**self.options, **kw}
        if self.needs_checkpoint:
            if not checkpoint:
                raise UsageError(f"--engine {self.name} needs --checkpoint DIR")
            from .torch_backend import TorchBackend

            if self.device == "cuda":
                import torch

                if not torch.cuda.is_available():
                    raise UsageError(f"--engine {self.name}: no CUDA device is visible; use --engine torch")
            return TorchBackend(checkpoint, **opts)
        if not model:
            raise UsageError(f"--engine {self.name} needs --model model.onnx")
        if self.runtime == "trt":
            from .trt.backend import TrtBackend
            from .trt.environment import require_tensorrt

            require_tensorrt()
            plan = Path(model)
            if plan.suffix != ".plan":
                from .trt.build import BuildOptions, build_engine

                # Built into (or taken from) the engine cache, named by its cache key.
                plan = Path(build_engine(model, None, BuildOptions()).output)
            return TrtBackend(plan, **opts)
        if str(model).endswith(".plan"):
            raise UsageError(f"{model} is a TensorRT plan; --engine {self.name} needs model.onnx")
        if self.runtime == "ort":
            from .ort_backend import OrtBackend

            return self._checked(OrtBackend(model, **opts), model)
        from .ov_backend import OvBackend

        return self._checked(OvBackend(model, **opts), model)

    @property
    def fp32_engine(self) -> str:
        """The engine of the same runtime and device for an FP32 file: what runs the FP32 decoder
        of a reduced-precision repository (ov-int8 -> ov, ort-cuda-int8 -> ort-cuda, trt-fp16 -> trt)."""
        if self.file_precision in ("fp32", "checkpoint"):
            return self.name
        return next(
            s.name
            for s in _TABLE
            if (s.runtime, s.device, s.precision, s.file_precision, s.peer)
            == (self.runtime, self.device, "fp32", "fp32", False)
        )

    def _checked(self, backend, model):
        """An engine named for a reduced-precision file (ort-int8, ov-int8, ort-fp16) refuses a file
        of another precision: its name would claim what it does not run."""
        meta = backend.metadata
        if (
            self.file_precision in ("fp16", "int8")
            and meta is not None
            and meta.precision != self.file_precision
        ):
            backend.close()
            plain = f"{self.runtime}" if meta.precision == "fp32" else f"{self.runtime}-{meta.precision}"
            raise UsageError(
                f"--engine {self.name} runs an {self.file_precision} export; {model} is {meta.precision}: "
                f"export it with --precision {self.file_precision}, or use --engine {plain}"
            )
        return backend


def _spec(name, runtime, precision, file_precision=None, **kw) -> EngineSpec:
    return EngineSpec(name, runtime, precision, file_precision or precision, **kw)


_CUDA_ORT = {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
_TABLE = [
    _spec("torch", "torch", "fp32", "checkpoint", summary="PyTorch eager FP32: the reference"),
    _spec("torch-cuda", "torch", "fp32", "checkpoint", device="cuda", options={"device": "cuda"}),
    _spec("ort", "ort", "fp32", summary="ONNX Runtime, CPU"),
    _spec("ort-fp16", "ort", "fp16"),
    _spec("ort-int8", "ort", "int8", int8=INT8_CPU_ORT, summary="ONNX Runtime, CPU, QLinearConv"),
    _spec("ort-cuda", "ort", "fp32", device="cuda", options=_CUDA_ORT),
    _spec("ort-cuda-fp16", "ort", "fp16", device="cuda", options=_CUDA_ORT),
    _spec("ort-cuda-int8", "ort", "int8", int8=INT8_QDQ, device="cuda", options=_CUDA_ORT),
    _spec("trt", "trt", "fp32", device="cuda"),
    _spec("trt-fp16", "trt", "fp16", device="cuda"),
    _spec("trt-int8", "trt", "int8", int8=INT8_QDQ, device="cuda"),
    # OpenVINO's CPU plugin defaults to bf16 wherever the CPU has it (AVX512-BF16 or AMX), so the
    # FP32 engine pins f32: FP32 is judged at FP32's tolerance.
    _spec("ov", "ov", "fp32", options={"inference_precision": "f32"}, summary="OpenVINO, f32"),
    _spec(
        "ov-bf16",
        "ov",
        "bf16",
        "fp32",
        options={"inference_precision": "bf16"},
        summary="OpenVINO on the FP32 file, bf16 arithmetic (refused where the CPU lacks bf16)",
    ),
    _spec("ov-int8", "ov", "int8", int8=INT8_QDQ, summary="OpenVINO on the Q/DQ INT8 file"),
    # Peers: what a user gets without capsdeploy's choices.
    _spec("torch-compile", "torch", "fp32", "checkpoint", options={"compile": True}, peer=True),
    _spec(
        "torch-bf16-autocast",
        "torch",
        "bf16",
        "checkpoint",
        options={"autocast": "bf16"},
        peer=True,
        summary="PyTorch eager under torch.autocast(bfloat16)",
    ),
    _spec(
        "ov-defaults",
        "ov",
        "fp32",
        options={"inference_precision": None, "performance_hint": None, "cache_dir": None},
        peer=True,
        summary="OpenVINO with every default, on the FP32 file (bf16 where the CPU has it)",
    ),
    _spec(
        "ov-defaults-int8",
        "ov",
        "int8",
        int8=INT8_QDQ,
        options={"inference_precision": None, "performance_hint": None, "cache_dir": None},
        peer=True,
        summary="OpenVINO with every default, on the Q/DQ INT8 file",
    ),
]
ENGINES: dict[str, EngineSpec] = {s.name: s for s in _TABLE}
PEERS = tuple(s.name for s in _TABLE if s.peer)
# The names the CLI offers where an engine is chosen (peers are bench-only).
NAMES = tuple(s.name for s in _TABLE if not s.peer)
CPU_ENGINES = tuple(n for n in NAMES if ENGINES[n].device == "cpu")


def engine_spec(name: str) -> EngineSpec:
    spec = ENGINES.get(name)
    if spec is None:
        raise UsageError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return spec
