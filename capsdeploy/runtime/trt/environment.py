"""Find TensorRT and a CUDA device, or say exactly what is missing.

CUDA is checked before any Builder or Runtime is constructed: creating them
without a usable device can abort the process instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from ...errors import UsageError


@dataclass(frozen=True)
class TrtEnvironment:
    trt: ModuleType  # tensorrt
    version: str
    major: int
    gpu_name: str
    compute_capability: str


def tensorrt_status() -> tuple[ModuleType | None, str | None]:
    """(module, None) or (None, why it is unusable)."""
    try:
        import tensorrt
    except ImportError as e:
        return None, (
            f"TensorRT is not installed ({e}); install it with `pip install 'capsdeploy[gpu]'` "
            "on a machine that can reach NVIDIA's package index"
        )
    except Exception as e:  # PyPI's stub packages raise at import when their download failed
        return None, f"TensorRT failed to import ({type(e).__name__}: {e})"
    if not hasattr(tensorrt, "Builder"):
        return None, "the installed `tensorrt` package is a stub without the TensorRT libraries"
    return tensorrt, None


def tensorrt_missing() -> list[str]:
    """What stands between this machine and a TensorRT engine; empty when nothing does."""
    missing = []
    try:  # the TensorRT backend keeps its device buffers and streams in torch
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]  # an optional dependency: None when absent
        missing.append("PyTorch is not installed (the TensorRT backend uses its CUDA tensors and streams)")
    if torch is not None and not torch.cuda.is_available():
        missing.append("no CUDA device is visible to PyTorch (torch.cuda.is_available() is False)")
    _, why = tensorrt_status()
    if why:
        missing.append(why)
    return missing


def require_tensorrt() -> TrtEnvironment:
    missing = tensorrt_missing()
    if missing:
        raise UsageError("TensorRT engine unavailable: " + "; ".join(missing) + ". Use --engine ort instead.")
    import torch

    trt, _ = tensorrt_status()
    assert trt is not None  # tensorrt_missing() found nothing missing
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    version = trt.__version__
    return TrtEnvironment(
        trt, version, int(version.split(".")[0]), props.name, f"{props.major}.{props.minor}"
    )
