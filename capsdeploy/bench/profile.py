"""Where the time goes inside one inference, per phase of the CapsNet graph: the engines' own
per-node counters (OpenVINO's PERF_COUNT, ONNX Runtime's profiler), grouped by where each node
sits in the exported graph: conv1, the primary-capsule convolution, the primary squash, the
prediction MatMul, the transpose of the predictions into routing's layout, and routing.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHASES = (
    "conv1",
    "primary conv",
    "primary squash",
    "prediction MatMul",
    "u_hat transpose",
    "routing",
    "other",
)


def graph_phases(onnx_path: str | Path) -> dict[str, str]:
    """ONNX node name -> phase, by position: the first and second convolutions, the first MatMul
    whose weight is a constant (the predictions), the Transpose that follows it, then routing."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type in ("Constant", "DequantizeLinear") for o in n.output
               if n.op_type == "Constant" or n.input[0] in consts}  # fmt: skip
    nodes = list(graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type in ("Conv", "QLinearConv", "ConvInteger")]
    pred = next(
        (i for i, n in enumerate(nodes) if n.op_type in ("MatMul", "QLinearMatMul", "MatMulInteger")
         and any(x in consts for x in n.input[1:])),
        len(nodes),
    )  # fmt: skip
    transpose = next((i for i in range(pred, len(nodes)) if nodes[i].op_type == "Transpose"), pred)
    out = {}
    for i, n in enumerate(nodes):
        if len(convs) >= 2 and i < convs[1]:
            phase = "conv1"
        elif len(convs) >= 2 and i == convs[1]:
            phase = "primary conv"
        elif i < pred:
            phase = "primary squash"
        elif i == pred:
            phase = "prediction MatMul"
        elif i <= transpose:
            phase = "u_hat transpose"
        else:
            phase = "routing"
        out[n.name] = phase
    return out


def _phase(name: str, phases: dict[str, str]) -> str:
    """An engine's node name -> phase: engines keep the ONNX name, sometimes with a suffix
    (OpenVINO's "/WithoutBiases", ONNX Runtime's fused names)."""
    if name in phases:
        return phases[name]
    base = name.split("/")[0]
    if base in phases:
        return phases[base]
    for candidate in (name, "node_" + name):  # ORT's fused names drop the exporter's prefix
        hits = [n for n in phases if n and (candidate.startswith(n + "_") or candidate.startswith(n + "/"))]
        if hits:
            return phases[max(hits, key=len)]
    return "other"  # layout reorders and dequantize steps the engines add


def profile_ov(onnx_path, batch: int, iters: int = 20, **ov_options) -> dict[str, float]:
    """Milliseconds per phase, the median of ``iters`` inferences (OpenVINO PERF_COUNT)."""
    from ..runtime.ov_backend import OvBackend

    phases = graph_phases(onnx_path)
    be = OvBackend(onnx_path, perf_count=True, cache_dir=None, **ov_options)
    x = _input(be, batch)
    per_iter = []
    for _ in range(iters + 3):
        be.infer(x)
        acc: dict[str, float] = defaultdict(float)
        for r in be.node_times():
            acc[_phase(r["node"], phases)] += r["real_ms"]
        per_iter.append(acc)
    return _median(per_iter[3:])


def profile_ort(onnx_path, batch: int, iters: int = 20, threads: int | None = None) -> dict[str, float]:
    """Milliseconds per phase, the median over ``iters`` inferences (ONNX Runtime's profiler)."""
    import onnxruntime as ort

    phases = graph_phases(onnx_path)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        spec = sess.get_inputs()[0]
        dtype = np.uint8 if "uint8" in spec.type else np.float32
        x = np.zeros((batch, *spec.shape[1:]), dtype)
        for _ in range(iters + 3):
            sess.run(None, {spec.name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    return _median(_ort_runs(events, phases)[3:])


def _ort_runs(events: list[dict], phases: dict[str, str]) -> list[dict[str, float]]:
    """Node times per run: a model_run event is written when its run ends, after its nodes."""
    runs: list[dict[str, float]] = []
    current: defaultdict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            current[_phase(e["name"][: -len("_kernel_time")], phases)] += e["dur"] / 1e3
        elif e.get("cat") == "Session" and e.get("name") == "model_run":
            runs.append(current)
            current = defaultdict(float)
    return runs


def _input(backend, batch: int) -> dict:
    spec = backend.inputs()[0]
    return {spec.name: np.zeros((batch, *spec.shape[1:]), spec.dtype)}


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {p: round(float(np.median([r.get(p, 0.0) for r in rows])), 4) for p in PHASES}


@dataclass
class ProfileReport:
    """``bench engines --profile``: milliseconds per phase per engine, at one batch size."""

    batch: int
    milliseconds: dict[str, dict[str, float]]  # engine label -> phase -> ms
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"environment": self.environment, "batch": self.batch, "milliseconds": self.milliseconds}


def profile_engines(
    engines: list[str],
    checkpoint: str | None,
    batch: int = 32,
    threads: int | None = None,
    data_dir: str | None = None,
    env: dict | None = None,
) -> ProfileReport:
    """Each engine exported from the run and profiled at ``batch``: the engines' own per-node
    counters exist for OpenVINO and ONNX Runtime on the CPU only, so other engines are refused."""
    from ..errors import UsageError
    from .engine import export_for, parse_engines

    if not checkpoint or not engines:
        raise UsageError("--profile needs --checkpoint and --engines (ort and ov engines)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="capsdeploy-profile-") as tmp:
        for choice in parse_engines(engines, []):
            spec = choice.spec
            if spec.runtime not in ("ort", "ov") or spec.device != "cpu":
                raise UsageError(
                    f"--profile reads OpenVINO's and ONNX Runtime's CPU counters; not {spec.name}"
                )
            path = export_for(choice, checkpoint, Path(tmp), data_dir)
            if spec.runtime == "ov":
                # The profile compiles its own model with PERF_COUNT on: no cached blob.
                opts = {k: v for k, v in spec.options.items() if k != "cache_dir"}
                results[choice.label] = profile_ov(path, batch, threads=threads, **opts)
            else:
                results[choice.label] = profile_ort(path, batch, threads=threads)
    if env is None:
        from ..envinfo import environment

        env = environment()
    return ProfileReport(batch, results, env)


def format_profile(results: dict[str, dict[str, float]]) -> str:
    """One column per engine: ms and share of the total per phase."""
    names = list(results)
    lines = [f"{'phase':<20}" + "".join(f"{n:>26}" for n in names)]
    totals = {n: sum(results[n].values()) or 1.0 for n in names}
    for p in [*PHASES, "total"]:
        cells = []
        for n in names:
            ms = totals[n] if p == "total" else results[n].get(p, 0.0)
            cells.append(f"{ms:>12.3f} ms {100 * ms / totals[n]:>8.1f}%")
        lines.append(f"{p:<20}" + "".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)
