"""What this machine runs: versions, execution providers, GPUs. Shared by `info` and `bench`."""

from __future__ import annotations

import importlib.metadata
import os
import platform

from .version import __version__


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8")


def usable_cores() -> int:
    """Cores this process may run on (a container's or taskset's cpuset), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU model, the instruction-set flags that decide CPU inference speed (AVX-512, VNNI for
    int8 dot products, BF16, AMX) and, for this machine, the cores this process may use (threads
    and streams are chosen per core count). Linux /proc/cpuinfo; empty elsewhere."""
    if cpuinfo is None:
        cores = {"cores": usable_cores()}
        try:
            with open("/proc/cpuinfo") as f:
                return {**cpu_info(f.read()), **cores}
        except OSError:
            return {"cpu_model": platform.processor() or None, "cpu_flags": [], **cores}
    model: str | None = None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"cpu_model": model, "cpu_flags": [f for f in CPU_FLAGS if f in flags]}


def environment() -> dict:
    """Torch is reported when installed; an ONNX Runtime deployment may have none."""
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]  # an optional dependency: None when absent
    env = {
        "capsdeploy": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        **cpu_info(),
        "torch": torch.__version__ if torch else None,
        "torch_threads": torch.get_num_threads() if torch else None,
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "openvino": _version("openvino"),
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
