"""Engine name -> Backend."""

from __future__ import annotations

from ..errors import UsageError

ENGINES = ("ort", "torch")


def make_backend(engine: str, model: str | None = None, checkpoint: str | None = None, **kw):
    if engine == "ort":
        if not model:
            raise UsageError("--engine ort needs --model model.onnx")
        from .ort_backend import OrtBackend

        return OrtBackend(model, **kw)
    if engine == "torch":
        if not checkpoint:
            raise UsageError("--engine torch needs --checkpoint DIR")
        from .torch_backend import TorchBackend

        return TorchBackend(checkpoint, **kw)
    if engine == "trt":
        raise UsageError(
            "--engine trt is not available yet: the TensorRT runtime lands with the runtime issue"
        )
    raise UsageError(f"unknown engine {engine!r}; choose one of {ENGINES}")
