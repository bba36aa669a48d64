"""Engine latency, trtexec-style: per (engine, batch size), warm up, then run back-to-back
inferences for a fixed duration and report the latency distribution, its coefficient of
variation and throughput, with the speedup over PyTorch eager measured in the same run.

Engines are the registry's names (runtime/engines.py: torch, ort, ort-int8, ov, ov-bf16,
ov-int8, trt-fp16, ..., and the peers ov-defaults, torch-compile, ...); named engines are
exported from the run directory into a temporary folder. Explicit model files (``--model a.onnx,b.plan``) are benchmarked as given.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data import load_split
from ..data.canvas import on_canvas
from ..data.preprocess import prepare_batch
from ..errors import NotOnThisMachine, UsageError
from ..runtime.engines import PEERS, EngineSpec, engine_spec

CV_WARNING = 0.05

# INT8 files that bench and tune export are calibrated on this many training digits; a
# repository written from a tune file (`export --tuned`) uses the same, so it serves what was validated.
BENCH_CALIB_SAMPLES = 256


@dataclass(frozen=True)
class EngineChoice:
    """One engine to time: a registry name (runtime/engines.py), on a fresh export of the run or on
    an explicit file, with optional backend options and export overrides (tune's variants)."""

    label: str
    engine: str  # a registry name
    model: str | None = None  # an explicit file; None: exported from the checkpoint
    routing_iters: int | None = None
    cuda_graphs: bool = False  # trt only: replay captured CUDA graphs (trtexec --useCudaGraph)
    options: tuple = ()  # (key, value) pairs for the backend constructor (threads, streams, hints)
    export: tuple = ()  # (key, value) pairs overriding the engine's export options (INT8 flavours)

    @property
    def spec(self) -> EngineSpec:
        return engine_spec(self.engine)

    @property
    def runtime(self) -> str:
        spec = self.spec
        cuda = spec.device == "cuda" and spec.runtime in ("torch", "ort")
        return f"{spec.runtime}-cuda" if cuda else spec.runtime

    @property
    def precision(self) -> str:
        return "file" if self.model else self.spec.precision

    def export_options(self) -> dict:
        return {**self.spec.export_options(), **dict(self.export)}


def with_graph_modes(choices: list[EngineChoice], modes: tuple[bool, ...]) -> list[EngineChoice]:
    """Each TensorRT engine once per CUDA-graph mode (labelled "+graphs" when on); others as given."""
    out = []
    for c in choices:
        if c.spec.runtime != "trt":
            out.append(c)
            continue
        out += [replace(c, label=f"{c.label}+graphs" if on else c.label, cuda_graphs=on) for on in modes]
    return out


def parse_engines(names: list[str], models: list[str]) -> list[EngineChoice]:
    out = [EngineChoice(name, engine_spec(name).name) for name in names]
    for m in models:
        # ENGINE=PATH runs the file on that engine (ov-int8=levers/int8.onnx); a bare path runs on
        # ort (.onnx) or trt (.plan).
        engine, sep, file = m.partition("=")
        path = Path(file if sep else m)
        if not path.is_file():
            raise UsageError(f"{path}: no such model file")
        if sep:
            out.append(EngineChoice(f"{engine}:{path.name}", engine_spec(engine).name, str(path)))
        else:
            out.append(EngineChoice(path.name, "trt" if path.suffix == ".plan" else "ort", m))
    labels = [e.label for e in out]
    if len(set(labels)) != len(labels):
        raise UsageError(f"engines named twice: {labels}")
    return out


def build_backend(
    choice: EngineChoice,
    checkpoint: str | None,
    workdir: Path,
    threads: int | None = None,
    data_dir: str | None = None,
    instances: int = 1,
):
    """The backend for ``choice``, exporting (and for trt building) what it needs into ``workdir``;
    INT8 calibrates on the run's training split, looked up in ``data_dir`` first. With
    ``instances`` > 1 our OpenVINO engines get one stream per instance (concurrent requests on one
    stream wait for each other); the peers keep OpenVINO's defaults."""
    spec = choice.spec
    if threads and spec.runtime == "torch":
        import torch

        torch.set_num_threads(threads)  # the reference gets the same threads as the engines

    kw = dict(choice.options)
    if threads and spec.runtime in ("ort", "ov"):
        kw.setdefault("threads", threads)
    if choice.cuda_graphs:
        kw["cuda_graphs"] = True
    if instances > 1 and spec.runtime == "ov" and not spec.peer:
        kw.setdefault("streams", instances)
        kw.setdefault("performance_hint", "THROUGHPUT")
    if choice.model:
        return spec.make(model=choice.model, **kw)
    if not checkpoint:
        raise UsageError(f"engine {choice.label} is built from a run: give --checkpoint RUN_DIR")
    if spec.needs_checkpoint:
        if choice.routing_iters:
            kw["routing_iters"] = choice.routing_iters
        return spec.make(checkpoint=checkpoint, **kw)
    return spec.make(model=str(export_for(choice, checkpoint, workdir, data_dir)), **kw)


def export_for(choice: EngineChoice, checkpoint: str, workdir: Path, data_dir: str | None = None) -> Path:
    """The ONNX file ``choice`` runs, exported into ``workdir`` once and shared by every engine
    that runs the same file."""
    from ..export import ExportOptions, export_onnx

    onnx_path = workdir / export_name(choice)
    if not onnx_path.exists():
        export_onnx(
            checkpoint,
            onnx_path,
            ExportOptions(
                routing_iters=choice.routing_iters,
                calib_samples=BENCH_CALIB_SAMPLES,
                data_dir=data_dir,
                **choice.export_options(),
            ),
        )
    return onnx_path


def export_name(choice: EngineChoice) -> str:
    """The file an engine is exported to; engines that need different files get different names
    (ort-int8's CPU-targeted file is not the Q/DQ file trt-int8, ort-cuda-int8 and ov-int8 share)."""
    opts = choice.export_options()
    if opts.get("precision") != "int8":
        opts = {"precision": opts["precision"]}
    tag = "-".join(str(v) if not isinstance(v, tuple) else "+".join(v) for v in opts.values())
    return f"{tag}-r{choice.routing_iters or 'run'}.onnx"


def latency_stats(seconds: list[float], batch: int, wall_s: float) -> dict:
    ms = np.asarray(seconds) * 1e3
    mean = float(ms.mean())
    return {
        "iterations": len(ms),
        "latency_ms_min": round(float(ms.min()), 4),
        "latency_ms_mean": round(mean, 4),
        "latency_ms_p50": round(float(np.percentile(ms, 50)), 4),
        "latency_ms_p90": round(float(np.percentile(ms, 90)), 4),
        "latency_ms_p95": round(float(np.percentile(ms, 95)), 4),
        "latency_ms_p99": round(float(np.percentile(ms, 99)), 4),
        "latency_ms_max": round(float(ms.max()), 4),
        "cv": round(float(ms.std() / mean), 4) if mean > 0 else 0.0,
        "images_per_second": round(batch * len(ms) / wall_s, 2),
    }


def time_backend(backend, feeds: dict, warmup_s: float, duration_s: float, min_iters: int = 10) -> dict:
    """Back-to-back inferences: ``warmup_s`` discarded, then at least ``duration_s`` and
    ``min_iters`` measured (trtexec's --warmUp/--duration, in seconds). A backend that can
    time its GPU phases with CUDA events (TensorRT) reports them apart, as trtexec does."""
    end = time.perf_counter() + warmup_s
    backend.infer(feeds)
    while time.perf_counter() < end:
        backend.infer(feeds)
    phased = hasattr(backend, "record_phases")
    if phased:
        backend.record_phases = True
    lat: list[float] = []
    phases: list[dict[str, float]] = []
    start = time.perf_counter()
    try:
        while len(lat) < min_iters or time.perf_counter() - start < duration_s:
            t0 = time.perf_counter()
            backend.infer(feeds)
            lat.append(time.perf_counter() - t0)
            if phased:
                phases.append(backend.last_phases)
    finally:
        if phased:
            backend.record_phases = False
    batch = next(iter(feeds.values())).shape[0]
    return latency_stats(lat, batch, time.perf_counter() - start) | phase_stats(phases)


def time_instances(backend, feeds: dict, instances: int, warmup_s: float, duration_s: float) -> dict:
    """Throughput with ``instances`` concurrent callers, each on its own clone (batcher workers,
    Triton instances, OpenVINO streams); latency is per call."""
    if instances == 1:
        return time_backend(backend, feeds, warmup_s, duration_s)
    clones = [backend.clone() for _ in range(instances)]
    for c in clones:
        c.infer(feeds)
    calls: list[tuple[float, float]] = []
    lock = threading.Lock()
    start_at = time.perf_counter() + warmup_s
    stop_at = start_at + duration_s

    def worker(c):
        mine = []
        while (t0 := time.perf_counter()) < stop_at:
            c.infer(feeds)
            if t0 >= start_at:
                mine.append((t0, time.perf_counter()))
        with lock:
            calls.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batch = next(iter(feeds.values())).shape[0]
    if not calls:
        raise UsageError("no inference completed in the timing window; lengthen --duration-s")
    # Calls that started in the window, over the time until the last of them ended.
    wall = max(t1 for _, t1 in calls) - start_at
    return latency_stats([t1 - t0 for t0, t1 in calls], batch, wall)


def phase_stats(phases: list[dict]) -> dict:
    """Median and p99 of each GPU phase over the measured inferences ({} when none were timed)."""
    if not phases:
        return {}
    out = {}
    for key in ("h2d_ms", "compute_ms", "d2h_ms"):
        values = np.asarray([p[key] for p in phases])
        out[f"gpu_{key[:-3]}_ms_p50"] = round(float(np.percentile(values, 50)), 4)
        out[f"gpu_{key[:-3]}_ms_p99"] = round(float(np.percentile(values, 99)), 4)
    return out


def _fit(backend, pixels: np.ndarray) -> np.ndarray:
    """Digits centred on the model's canvas when it is larger (runs trained with --pad or --multimnist)."""
    size = backend.inputs()[0].shape[-1]
    return on_canvas(pixels, size) if isinstance(size, int) and pixels.shape[-1] < size else pixels


def feeds_for(backend, pixels: np.ndarray, batch: int) -> dict:
    spec = backend.inputs()[0]
    meta = backend.metadata
    pixels = _fit(backend, pixels)
    reps = -(-batch // len(pixels))
    chunk = np.concatenate([pixels] * reps)[:batch]
    return {spec.name: prepare_batch(chunk, meta.input_dtype, meta.normalization)}


def accuracy(backend, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    meta = backend.metadata
    name = backend.inputs()[0].name
    limit = backend.max_batch_size or batch
    step = max(min(batch, limit), backend.min_batch_size)
    hits = 0
    for i in range(0, len(images), step):
        chunk = images[i : i + step]
        # A chunk below the profile's minimum (the last one, or a tiny test set) is padded with
        # copies of its last image; only its own rows are scored.
        pad = max(backend.min_batch_size - len(chunk), 0)
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)]) if pad else chunk
        x = prepare_batch(_fit(backend, padded), meta.input_dtype, meta.normalization)
        scores = backend.infer({name: x})["scores"][: len(chunk)]
        hits += int((scores.argmax(1) == labels[i : i + step]).sum())
    return hits / len(images)


def runnable_batches(backend, batch_sizes: list[int]) -> tuple[list[int], list[int]]:
    """The batch sizes inside the engine's profile, and those outside it (skipped)."""
    lo, hi = backend.min_batch_size, backend.max_batch_size
    inside = [b for b in batch_sizes if b >= lo and (not hi or b <= hi)]
    return inside, [b for b in batch_sizes if b not in inside]


# --cuda-graphs: the modes each TensorRT engine is timed in (one row each).
GRAPH_MODES = {"both": (False, True), "on": (True,), "off": (False,)}
DEFAULT_BATCHES = [1, 8, 32, 128]


@dataclass
class BenchReport:
    """What ``bench engines`` (mode "engine") and ``bench sweep`` (mode "routing-sweep") measured:
    the settings, the environment, and one row per (engine, batch). Rows stay dicts with the JSON's
    keys: they are the table, read by column (CSV, Markdown, plot)."""

    mode: str
    checkpoint: str | None
    batch_sizes: list[int]
    warmup_s: float
    duration_s: float
    threads: int | None
    instances: int
    peak_fp32_gemm_gflops: float
    peak_fp32_gemm_gflops_gpu: float | None
    results: list[dict]
    warnings: list[str]
    dataset: str = "synthetic"
    environment: dict = field(default_factory=dict)
    routing_iters: list[int] | None = None  # the sweep's counts; None in engine mode
    peak_int8_gemm_gops: float | None = None  # measured when a CPU INT8 engine was timed

    def to_dict(self) -> dict:
        """The --json document, keys in the order the flag form always wrote them."""
        out = {
            "environment": self.environment,
            "dataset": self.dataset,
            "mode": self.mode,
            "checkpoint": self.checkpoint,
            "batch_sizes": self.batch_sizes,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "threads": self.threads,
            "instances": self.instances,
            "peak_fp32_gemm_gflops": self.peak_fp32_gemm_gflops,
            "peak_fp32_gemm_gflops_gpu": self.peak_fp32_gemm_gflops_gpu,
            "peak_int8_gemm_gops": self.peak_int8_gemm_gops,
            "results": self.results,
            "warnings": self.warnings,
        }
        if self.routing_iters is not None:
            out["routing_iters"] = self.routing_iters
        return out


def with_peers(engines: list[str]) -> list[str]:
    """``engines`` with every peer added, and PyTorch eager first: it is the reference every
    ratio is taken against, so it is always in a run that has peers."""
    engines = ["torch", *[e for e in engines if e != "torch"]]
    return engines + [p for p in PEERS if p not in engines]


def run_dataset(checkpoint: str | None) -> str:
    """The dataset the run was trained on (synthetic without a run)."""
    if not checkpoint:
        return "synthetic"
    from ..model.checkpoint import read_run_info

    return read_run_info(checkpoint).dataset_name


def timing_dataset(checkpoint: str | None, dataset: str | None, accuracy_samples: int) -> str:
    """The images an engine run times (and scores) on: as given; else the run's own when accuracy
    is scored (synthetic digits would score noise); else synthetic (timing does not care)."""
    return dataset or (run_dataset(checkpoint) if accuracy_samples else "synthetic")


def engine_choices(
    engines: list[str], models: list[str], peers: bool = False, cuda_graphs: str = "both"
) -> list[EngineChoice]:
    """What one engine run times: the named engines (with the peers and the torch reference when
    ``peers``), then the model files, each TensorRT engine once per --cuda-graphs mode."""
    names = with_peers(engines) if peers else engines
    return with_graph_modes(parse_engines(names, models), GRAPH_MODES[cuda_graphs])


def bench_engines(
    choices: list[EngineChoice],
    checkpoint: str | None,
    batch_sizes: list[int] | None = None,
    warmup_s: float = 0.2,
    duration_s: float = 3.0,
    threads: int | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    test_split: str = "t10k",
    accuracy_samples: int = 0,
    progress=None,
    instances: int = 1,
    env: dict | None = None,
) -> BenchReport:
    """Every (engine, batch) configuration; ``accuracy_samples`` > 0 also scores each engine on
    that many test images (all of them with -1). ``instances`` > 1 times each engine with that
    many concurrent callers, each on its own clone (model instances, OpenVINO streams).
    ``batch_sizes``: default 1, 8, 32, 128. ``dataset``: default ``timing_dataset``'s choice.
    ``env``: the environment, when the caller already collected it (to print it first)."""
    if not choices:
        raise UsageError("name at least one engine (--engines) or model file (--model)")
    if batch_sizes is None:
        batch_sizes = DEFAULT_BATCHES
    if any(b < 1 for b in batch_sizes) or not batch_sizes:
        raise UsageError("--batch-sizes must be positive integers")
    batch_sizes = list(dict.fromkeys(batch_sizes))
    dataset = timing_dataset(checkpoint, dataset, accuracy_samples)
    pixels = load_split(dataset, test_split, data_dir, download=False, limit=256).images
    test = None
    if accuracy_samples:
        limit = None if accuracy_samples < 0 else accuracy_samples
        test = load_split(dataset, test_split, data_dir, download=False, limit=limit)
    rows, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="capsdeploy-bench-") as tmp:
        for choice in choices:
            try:
                backend = build_backend(choice, checkpoint, Path(tmp), threads, data_dir, instances)
            except NotOnThisMachine as e:  # one engine of a comparison this CPU cannot run
                skipped.append(f"{choice.label}: skipped on this machine: {e}")
                continue
            try:
                acc = accuracy(backend, test.images, test.labels) if test is not None else None
                inside, outside = runnable_batches(backend, batch_sizes)
                if outside:
                    skipped.append(
                        f"{choice.label}: batch sizes {outside} are outside its profile "
                        f"{backend.min_batch_size}..{backend.max_batch_size or 'unbounded'}; skipped"
                    )
                for batch in inside:
                    if progress:
                        progress(f"{choice.label} batch {batch}")
                    feeds = feeds_for(backend, pixels, batch)
                    stats = time_instances(backend, feeds, instances, warmup_s, duration_s)
                    rows.append(
                        {
                            "engine": choice.label,
                            "engine_name": choice.engine,
                            "peer": choice.spec.peer,
                            "runtime": choice.runtime,
                            "precision": choice.precision,
                            # What the file holds ("file" rows above): an INT8 file given with --model
                            # is an INT8 engine for the INT8 roofline too.
                            "file_precision": backend.metadata.precision if backend.metadata else None,
                            "routing_iters": choice.routing_iters
                            or (backend.metadata.routing_iters if backend.metadata else None),
                            "batch": batch,
                            "instances": instances,
                            **stats,
                            "accuracy": acc,
                            "math": backend.math,
                            "_flops": _flops_of(backend, choice),
                            **graph_report(backend, choice),
                        }
                    )
            finally:
                backend.close()
    if not rows and skipped:
        raise NotOnThisMachine("; ".join(skipped))
    _add_speedups(rows)
    from .flops import add_peak_fractions, is_cpu_int8, peak_gemm_gflops, peak_int8_gemm_gops

    peak = peak_gemm_gflops()
    int8_peak = peak_int8_gemm_gops() if any(is_cpu_int8(r) for r in rows) else None
    gpu_peak = add_peak_fractions(rows, peak, int8_peak)
    warnings = skipped + [
        f"{r['engine']} batch {r['batch']}: coefficient of variation {r['cv']:.1%} > {CV_WARNING:.0%}; "
        "the machine is noisy, rerun or lengthen --duration-s"
        for r in rows
        if r["cv"] > CV_WARNING
    ]
    if env is None:
        from ..envinfo import environment

        env = environment()
    return BenchReport(
        mode="engine",
        checkpoint=checkpoint,
        batch_sizes=batch_sizes,
        warmup_s=warmup_s,
        duration_s=duration_s,
        threads=threads,
        instances=instances,
        peak_fp32_gemm_gflops=round(peak, 1),
        peak_fp32_gemm_gflops_gpu=round(gpu_peak, 1) if gpu_peak else None,
        peak_int8_gemm_gops=round(int8_peak, 1) if int8_peak else None,
        results=rows,
        warnings=warnings,
        dataset=dataset,
        environment=env,
    )


def graph_report(backend, choice: EngineChoice) -> dict:
    """For a CUDA-graph engine, the buckets captured and those that fell back to eager
    (a "+graphs" row timed on eager fallbacks would claim graph speed it did not have)."""
    state = getattr(backend, "capture_state", None) if choice.cuda_graphs else None
    if state is None:
        return {}
    return {
        "graphs_captured": [b for b, ok in state.items() if ok],
        "graphs_failed": [b for b, ok in state.items() if not ok],
    }


def _flops_of(backend, choice: EngineChoice) -> int | None:
    from .flops import capsnet_flops

    meta = backend.metadata
    if meta is None or "model" not in meta.run_config or meta.run_config.get("arch", "capsnet") != "capsnet":
        return None  # FLOPs are counted for CapsNet only
    return capsnet_flops(meta.run_config["model"], choice.routing_iters or meta.routing_iters)


def _add_speedups(rows: list[dict]) -> None:
    """Throughput and p50 latency relative to PyTorch eager at the same batch and routing count:
    the CPU reference (torch) where it ran, else torch-cuda."""
    ref = {}
    for name in ("torch-cuda", "torch"):  # torch last: it wins where both ran
        ref.update(
            {(r["batch"], r["routing_iters"]): r for r in rows if r.get("engine_name", r["runtime"]) == name}
        )
    for r in rows:
        base = ref.get((r["batch"], r["routing_iters"]))
        r["speedup_vs_torch"] = round(r["images_per_second"] / base["images_per_second"], 3) if base else None
        r["p50_vs_torch"] = round(r["latency_ms_p50"] / base["latency_ms_p50"], 3) if base else None


def sweep_routing(
    checkpoint: str,
    iterations: list[int],
    engines: list[str] | None = None,
    batch: int = 32,
    dataset: str | None = None,
    accuracy_samples: int = -1,
    **kw,
) -> BenchReport:
    """Accuracy and latency per routing iteration count, side by side: each count exported from
    the run and run on each engine (default ort), scored on the run's own test set (all of it
    by default: the accuracy is the point of the sweep)."""
    if not checkpoint:
        raise UsageError("the routing sweep exports each count from a run: give --checkpoint RUN_DIR")
    if not iterations or any(k < 1 for k in iterations):
        raise UsageError("--routing-iters must be positive integers")
    choices = [
        replace(e, label=f"{e.label}-r{k}", routing_iters=k)
        for k in iterations
        for e in parse_engines(engines or ["ort"], [])
    ]
    report = bench_engines(
        choices, checkpoint, [batch], dataset=dataset, accuracy_samples=accuracy_samples, **kw
    )
    return replace(report, mode="routing-sweep", routing_iters=iterations)


# -- output -----------------------------------------------------------------
COLUMNS = [
    ("engine", "engine", "{}"),
    ("batch", "batch", "{}"),
    ("latency_ms_p50", "p50 ms", "{:.3f}"),
    ("latency_ms_p90", "p90 ms", "{:.3f}"),
    ("latency_ms_p99", "p99 ms", "{:.3f}"),
    ("latency_ms_mean", "mean ms", "{:.3f}"),
    ("cv", "cv", "{:.1%}"),
    ("images_per_second", "img/s", "{:.1f}"),
    # GPU phases from CUDA events (TensorRT), medians; columns appear only when measured.
    ("gpu_h2d_ms_p50", "H2D ms", "{:.3f}"),
    ("gpu_compute_ms_p50", "GPU ms", "{:.3f}"),
    ("gpu_d2h_ms_p50", "D2H ms", "{:.3f}"),
    ("speedup_vs_torch", "x torch", "{:.2f}"),
    ("effective_gflops", "GFLOP/s", "{:.1f}"),
    ("fraction_of_int8_peak", "of INT8 peak", "{:.0%}"),
    ("accuracy", "accuracy", "{:.2%}"),
]


def _cell(row, key, fmt) -> str:
    v = row.get(key)
    return "-" if v is None else fmt.format(v)


def format_table(rows: list[dict], markdown: bool = False) -> str:
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    cells = [[_cell(r, k, f) for k, _, f in cols] for r in rows]
    heads = [h for _, h, _ in cols]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(" --- " for _ in heads) + "|"]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*heads), *(fmt.format(*c) for c in cells)])


def write_csv(rows: list[dict], path: str) -> None:
    import csv
    import io

    from ..fileio import write_bytes_atomic

    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    write_bytes_atomic(path, buf.getvalue().encode())


def plot(rows: list[dict], path: str) -> None:
    """Latency (p50) and throughput against batch size, one line per engine."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = sorted((r for r in rows if r["engine"] == engine), key=lambda r: r["batch"])
        xs = [r["batch"] for r in mine]
        ax1.plot(xs, [r["latency_ms_p50"] for r in mine], marker="o", label=engine)
        ax2.plot(xs, [r["images_per_second"] for r in mine], marker="o", label=engine)
    for ax, title in ((ax1, "p50 latency (ms)"), (ax2, "throughput (images/s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    ax1.set_yscale("log")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
