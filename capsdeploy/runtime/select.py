"""Engine name -> Backend, and `--engine auto`."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

ENGINES = ("auto", "trt", "ort", "ort-cuda", "torch", "torch-cuda")


def resolve_auto(model: str | None, checkpoint: str | None) -> tuple[str, str]:
    """(engine, why): trt where TensorRT and a GPU are present, else ort with CUDA, else ort on CPU."""
    if not model:
        if checkpoint:
            return "torch", "no --model given: PyTorch eager on the checkpoint"
        raise UsageError("--engine auto needs --model (ONNX or plan) or --checkpoint")
    if str(model).endswith(".plan"):
        return "trt", "a TensorRT plan was given"
    from .trt.environment import tensorrt_missing

    missing = tensorrt_missing()
    if not missing:
        return "trt", "TensorRT and a CUDA device are present"
    reason = "no TensorRT: " + "; ".join(m.split(" (")[0] for m in missing)
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return "ort-cuda", f"ONNX Runtime with CUDA ({reason})"
    return "ort", f"ONNX Runtime on CPU ({reason})"


def make_backend(engine: str, model: str | None = None, checkpoint: str | None = None, **kw):
    """Build the backend for ``engine``; ``kw`` goes to the backend's constructor."""
    if engine == "auto":
        engine, _ = resolve_auto(model, checkpoint)
    if engine in ("ort", "ort-cuda"):
        if not model or str(model).endswith(".plan"):
            raise UsageError("--engine ort needs --model model.onnx")
        from .ort_backend import OrtBackend

        if engine == "ort-cuda":
            kw.setdefault("providers", ["CUDAExecutionProvider", "CPUExecutionProvider"])
        return OrtBackend(model, **kw)
    if engine in ("torch", "torch-cuda"):
        if not checkpoint:
            raise UsageError(f"--engine {engine} needs --checkpoint DIR")
        from .torch_backend import TorchBackend

        if engine == "torch-cuda":
            import torch

            if not torch.cuda.is_available():
                raise UsageError("--engine torch-cuda: no CUDA device is visible; use --engine torch")
            kw.setdefault("device", "cuda")
        return TorchBackend(checkpoint, **kw)
    if engine == "trt":
        if not model:
            raise UsageError("--engine trt needs --model (model.onnx, built and cached, or model.plan)")
        from .trt.backend import TrtBackend
        from .trt.environment import require_tensorrt

        require_tensorrt()
        plan = Path(model)
        if plan.suffix != ".plan":
            from .trt.build import BuildOptions, build_engine

            # Built into (or taken from) the engine cache, named by its cache key.
            plan = Path(build_engine(model, None, BuildOptions())["output"])
        return TrtBackend(plan, **kw)
    raise UsageError(f"unknown engine {engine!r}; choose one of {ENGINES}")
