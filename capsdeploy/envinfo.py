"""What this machine runs: versions, execution providers, GPUs. Shared by `info` and `bench`."""

from __future__ import annotations

import importlib.metadata
import platform

from .version import __version__


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """Torch is reported when installed; an ONNX Runtime deployment may have none."""
    try:
        import torch
    except ImportError:
        torch = None
    env = {
        "capsdeploy": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": __import__("os").cpu_count(),
        "torch": torch.__version__ if torch else None,
        "torch_threads": torch.get_num_threads() if torch else None,
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "tensorrt": None,
        "cuda_available": bool(torch and torch.cuda.is_available()),
        "cuda_devices": [],
    }
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        env["onnxruntime_providers"] = []
    try:
        import tensorrt

        env["tensorrt"] = tensorrt.__version__
    except Exception:  # absent, or a stub package that fails on import
        pass
    if env["cuda_available"]:
        env["cuda_version"] = torch.version.cuda
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            env["cuda_devices"].append(
                {
                    "index": i,
                    "name": p.name,
                    "compute_capability": f"{p.major}.{p.minor}",
                    "memory_gib": round(p.total_memory / 2**30, 1),
                }
            )
    return env


def format_environment(env: dict) -> str:
    lines = []
    for k, v in env.items():
        if k == "cuda_devices":
            v = ", ".join(f"{d['name']} (sm {d['compute_capability']})" for d in v) or "none"
        elif isinstance(v, list):
            v = ", ".join(v) or "none"
        elif v is None:
            v = "not installed"
        lines.append(f"{k:<24}{v}")
    return "\n".join(lines)
