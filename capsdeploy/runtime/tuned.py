"""What a tuned repository says about its engine, and the check that it was tuned here.

`capsdeploy tune` measures engines on one CPU; the winner on an AVX2-only EPYC is not the winner
on a Xeon with AMX. So a tune result names its CPU (model and the flags that decide inference
speed), and a result from another CPU is refused rather than trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..envinfo import cpu_info
from ..errors import UsageError

ENGINE_KEY = "capsdeploy.engine"
OPTIONS_KEY = "capsdeploy.engine_options"
CPU_KEY = "capsdeploy.tuned_cpu"


def describe_cpu(cpu: dict) -> str:
    cores = f" with {cpu['cores']} usable cores" if cpu.get("cores") else ""
    flags = " ".join(cpu.get("cpu_flags") or []) or "no listed flags"
    return f"{cpu.get('cpu_model') or 'unknown CPU'}{cores} [{flags}]"


def check_same_cpu(recorded: dict, what: str, here: dict | None = None) -> None:
    """UsageError naming both CPUs when ``recorded`` (model, flags, usable cores) is not this
    machine's. The core count matters as much as the model: streams and threads were chosen for
    it, so a tune on 2 cores of a 64-core CPU is not this 64-core machine's. Tune files written
    before cores were recorded are compared on model and flags."""
    here = here or cpu_info()
    same = recorded.get("cpu_model") == here.get("cpu_model") and sorted(
        recorded.get("cpu_flags") or []
    ) == sorted(here.get("cpu_flags") or [])
    if recorded.get("cores") and here.get("cores") and recorded["cores"] != here["cores"]:
        same = False
    if not same:
        raise UsageError(
            f"{what} was tuned on {describe_cpu(recorded)}, but this machine is {describe_cpu(here)}; "
            "engine speed depends on the CPU: run `capsdeploy tune` here"
        )


def engine_for_model(path: Path, platform: str, params: dict[str, str]) -> tuple[str, str, dict]:
    """(engine, why, backend options) for `--engine auto` on one repository model: the tuned
    engine where the config names one (refused when tuned on another CPU), OpenVINO with the
    config's settings for an openvino model, else the usual auto choice."""
    if ENGINE_KEY in params:
        if CPU_KEY in params:
            check_same_cpu(json.loads(params[CPU_KEY]), f"{path.parent.parent}")
        options = json.loads(params.get(OPTIONS_KEY) or "{}")
        return params[ENGINE_KEY], "the engine `capsdeploy tune` chose on this CPU", options
    if platform == "openvino":
        from ..repository.openvino import options_from_parameters

        options = options_from_parameters(params)
        # ov runs whatever file it is given (the INT8 capsnet and the FP32 decoder of an INT8
        # repository alike); the config's settings say how.
        engine = "ov-bf16" if options.get("inference_precision") == "bf16" else "ov"
        return engine, "an openvino model", options
    from .select import resolve_auto

    engine, why = resolve_auto(str(path), None)
    return engine, why, {}
