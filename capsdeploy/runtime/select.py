"""Engine name -> Backend, and `--engine auto`."""

from __future__ import annotations

from ..errors import UsageError
from .engines import NAMES, engine_spec

ENGINES = ("auto", *NAMES)  # what --engine offers; the registry (engines.py) defines them


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
    """Build the backend for ``engine`` (a registry name, or auto); ``kw`` goes to its constructor."""
    if engine == "auto":
        engine, _ = resolve_auto(model, checkpoint)
    return engine_spec(engine).make(model=model, checkpoint=checkpoint, **kw)
