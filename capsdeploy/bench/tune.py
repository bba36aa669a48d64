"""`capsdeploy tune`: TensorRT's tactic selection, across engines, on this machine.

Every candidate (an engine of the registry, with an INT8 flavour, a precision hint or a
thread/stream setting) is validated against PyTorch FP32 on real test digits with its
precision's tolerances (the one comparator, runtime/compare.py); each one that passes is timed
over a batch-size sweep. The winners: the throughput engine and its best batch, and the latency
engine (batch-1 p50). No engine is assumed best on any CPU: OpenVINO wins on some machines and
loses to ONNX Runtime on AVX2-only ones, so the choice is measured, and the result names the CPU
it was measured on (a tune file from another CPU is refused).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..data import load_split
from ..data.preprocess import prepare_batch
from ..errors import CapsDeployError, UsageError
from ..repository import BatchingOptions
from ..runtime.backend import Backend
from ..runtime.compare import compare_outputs, tolerances_for
from ..runtime.engines import INT8_QDQ, engine_spec
from .engine import EngineChoice, _fit, build_backend, feeds_for, time_instances

TUNE_VERSION = 1
DEFAULT_BATCHES = (1, 8, 16, 32, 64, 128)
# Where the repository's model file lives per runtime (`export --format triton --platform`).
PLATFORM_OF = {"ort": "onnx", "ov": "openvino", "trt": "trt"}


@dataclass(frozen=True)
class Candidate:
    """One configuration to try: a registry engine, backend options, export overrides and the
    number of instances (concurrent callers, each on its own clone) it is timed with."""

    label: str
    engine: str
    options: tuple = ()
    export: tuple = ()
    instances: int = 1

    def choice(self) -> EngineChoice:
        return EngineChoice(self.label, self.engine, options=self.options, export=self.export)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["options"], d["export"] = dict(self.options), dict(self.export)
        return d


@dataclass(frozen=True)
class TuneReport:
    """What `capsdeploy tune` found: ``to_dict()`` is tune.json. The candidate rows (verdict,
    validation, timings per batch) and the winners are the table's data, kept as JSON-shaped
    dicts; the CLI prints ``describe()``."""

    checkpoint: str
    model: str | None
    cpu: dict
    environment: dict
    openvino_capabilities: list[str] | None
    validation: dict
    batch_sizes: list[int]
    candidates: list[dict]
    winners: dict
    version: int = TUNE_VERSION

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "checkpoint": self.checkpoint,
            "model": self.model,
            "cpu": self.cpu,
            "environment": self.environment,
            "openvino_capabilities": self.openvino_capabilities,
            "validation": self.validation,
            "batch_sizes": self.batch_sizes,
            "candidates": self.candidates,
            "winners": self.winners,
        }

    def describe(self) -> str:
        return format_tune(self.to_dict())


@dataclass(frozen=True)
class RepositoryPlan:
    """What `export --format triton --tuned tune.json` writes for the repository winner."""

    engine: str  # the winner's label
    platform: str  # onnx | openvino | trt (`export --platform`)
    export: dict  # ExportOptions fields: the file the winner was measured on
    ov_options: dict | None  # OvBackend settings (openvino platform only)
    batching: BatchingOptions  # max_batch_size, preferred sizes, instances from the curve
    parameters: dict[str, str]  # config.pbtxt parameters naming the engine, its options and CPU


def default_candidates(cpu_count: int | None = None) -> list[Candidate]:
    """Every CPU engine and INT8 flavour, OpenVINO's precisions, and a two-stream variant of the
    throughput-minded engines where there are at least two cores."""
    import os

    cores = cpu_count or os.cpu_count() or 1
    cands = [
        Candidate("torch", "torch"),
        Candidate("ort", "ort"),
        Candidate("ort-fp16", "ort-fp16"),
        Candidate("ort-int8", "ort-int8"),  # UINT8 activations, QLinearConv
        Candidate("ort-int8[cpu-qdq]", "ort-int8", export=(("int8_format", "qdq"),)),
        Candidate("ort-int8[qdq]", "ort-int8", export=tuple(INT8_QDQ.items())),
        Candidate("ov", "ov"),
        Candidate("ov-bf16", "ov-bf16"),
        Candidate("ov-int8", "ov-int8"),
        Candidate("ov-int8+bf16", "ov-int8", options=(("inference_precision", "bf16"),)),
        # The prediction MatMul in INT8 too (routing stays float): slower on AVX512-VNNI without AMX
        # (docs/results.md), measured here rather than assumed everywhere.
        Candidate("ov-int8[matmul]", "ov-int8", export=(("int8_ops", ("Conv", "PredictionMatMul")),)),
        # OpenVINO with every default (the peers of bench --peers): the tuned choice is then never
        # slower than what a user gets from OpenVINO alone, whatever the CPU makes its defaults.
        Candidate("ov-defaults", "ov-defaults"),
        Candidate("ov-defaults-int8", "ov-defaults-int8"),
    ]
    if cores >= 2:
        half = max(1, cores // 2)
        streams = (("performance_hint", "THROUGHPUT"), ("streams", 2))
        cands += [
            Candidate("ov-int8 x2 streams", "ov-int8", options=streams, instances=2),
            Candidate(
                "ov-int8+bf16 x2 streams",
                "ov-int8",
                options=(*streams, ("inference_precision", "bf16")),
                instances=2,
            ),
            Candidate(f"ort-int8 x2 ({half} thread)", "ort-int8", options=(("threads", half),), instances=2),
        ]
    return cands


def parse_candidates(names: list[str]) -> list[Candidate]:
    """Candidates by label (default_candidates' labels) or by registry engine name."""
    known = {c.label: c for c in default_candidates()}
    out = []
    for n in names:
        if n in known:
            out.append(known[n])
        else:
            engine_spec(n)  # UsageError naming the registry when unknown
            out.append(Candidate(n, n))
    return out


def _outputs(backend, pixels: np.ndarray, batch: int = 250) -> dict[str, np.ndarray]:
    meta = backend.metadata
    name = backend.inputs()[0].name
    step = min(batch, backend.max_batch_size or batch)
    out: dict[str, list] = {}
    for i in range(0, len(pixels), step):
        x = prepare_batch(_fit(backend, pixels[i : i + step]), meta.input_dtype, meta.normalization)
        for k, v in backend.infer({name: x}).items():
            out.setdefault(k, []).append(v.astype(np.float32, copy=False))
    return {k: np.concatenate(v) for k, v in out.items()}


def tolerance_key(backend, spec) -> str:
    """The precision a candidate is judged at: what it computes in (bf16 for OpenVINO's bf16
    hint on an FP32 file), else its file's precision."""
    meta_precision = backend.metadata.precision if backend.metadata is not None else spec.precision
    return backend.compute_precision or meta_precision


Builder = Callable[[Candidate, Path], Backend]
Timer = Callable[[Candidate, Backend, dict, int], dict]


def tune(
    checkpoint: str,
    candidates: list[Candidate],
    samples: int = 2000,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCHES,
    dataset: str = "mnist",
    split: str = "t10k",
    data_dir: str | None = None,
    warmup_s: float = 0.3,
    duration_s: float = 1.0,
    build: Builder | None = None,
    timer: Timer | None = None,
    progress: Callable[[str], None] | None = None,
    model: str | None = None,
) -> TuneReport:
    """Validate, time and choose; return the tune report (what `tune.json` holds).

    ``build(candidate, workdir)`` and ``timer(candidate, backend, feeds, batch)`` default to the
    real export + backend and bench's timing; tests inject their own. With ``model`` (an ONNX
    file exported from ``checkpoint``), the candidates that run a file run that one; those that
    need another file (another precision or INT8 flavour) are rejected as not applicable."""
    from ..envinfo import cpu_info, environment
    from ..runtime.torch_backend import TorchBackend  # the reference is PyTorch FP32

    if samples < 1 or not candidates or not batch_sizes:
        raise UsageError("tune needs candidates, batch sizes and at least one validation sample")
    labels = [c.label for c in candidates]
    if len(set(labels)) != len(labels):
        raise UsageError(f"candidates named twice: {labels}")
    say = progress or (lambda _msg: None)
    data = load_split(dataset, split, data_dir, download=False, limit=samples)
    file_meta = _file_metadata(model) if model else None
    # A file exported with --routing-iters N is another model than the run at its trained count:
    # the reference, and every candidate that runs the checkpoint, unroll routing as the file does.
    iters = (file_meta.routing_iters or None) if file_meta else None
    reference = TorchBackend(checkpoint, routing_iters=iters)
    say(f"reference: PyTorch FP32 on {len(data)} {dataset}/{split} digits")
    ref = _outputs(reference, data.images)
    reference.close()

    file_precision = file_meta.precision if file_meta else None

    def default_build(c: Candidate, workdir: Path):
        spec = engine_spec(c.engine)
        if model and not spec.needs_checkpoint:
            if c.export or spec.file_precision != file_precision:
                raise UsageError(
                    f"not applicable: it runs a {spec.file_precision} file, --model is {file_precision}"
                )
            return build_backend(replace(c.choice(), model=str(model)), checkpoint, workdir)
        choice = replace(c.choice(), routing_iters=iters) if spec.needs_checkpoint else c.choice()
        return build_backend(choice, checkpoint, workdir, data_dir=data_dir)

    def default_timer(c: Candidate, backend, feeds: dict, batch: int) -> dict:
        return time_instances(backend, feeds, c.instances, warmup_s, duration_s)

    build = build or default_build
    timer = timer or default_timer
    rows = []
    with tempfile.TemporaryDirectory(prefix="capsdeploy-tune-") as tmp:
        for c in candidates:
            spec = engine_spec(c.engine)
            row = {
                **c.to_dict(),
                "runtime": spec.runtime,
                "verdict": "rejected",
                "reason": None,
                "timings": {},
            }
            rows.append(row)
            say(f"{c.label}: build and validate")
            try:
                backend = build(c, Path(tmp))
            except CapsDeployError as e:
                row["reason"] = f"unavailable: {e}"
                continue
            try:
                key = tolerance_key(backend, spec)
                row["precision"], row["math"] = key, backend.math
                cmp = compare_outputs(
                    ref, _outputs(backend, data.images), tolerances_for(key, backend.math), data.labels
                )
                row["validation"] = {
                    "samples": cmp.num_samples,
                    "tolerance": key,
                    "top1_agreement": cmp.top1_agreement,
                    "reference_accuracy": cmp.reference_accuracy,
                    "accuracy": cmp.candidate_accuracy,
                    "max_abs_error_scores": cmp.outputs.get("scores", {}).get("max_abs_error"),
                    "failures": cmp.failures,
                }
                if not cmp.passed:
                    row["reason"] = f"failed {key} validation: {cmp.failures[0]}"
                    continue
                row["verdict"], row["reason"] = "passed", None
                for b in batch_sizes:
                    if backend.max_batch_size and b > backend.max_batch_size:
                        continue
                    say(f"{c.label}: batch {b}")
                    row["timings"][str(b)] = timer(c, backend, feeds_for(backend, data.images, b), b)
            except CapsDeployError as e:  # one candidate's failure is its verdict, not the run's
                row["verdict"], row["reason"], row["timings"] = "rejected", f"failed: {e}", {}
            finally:
                backend.close()
    return TuneReport(
        checkpoint=str(checkpoint),
        model=str(model) if model else None,
        cpu=cpu_info(),
        environment=environment(),
        openvino_capabilities=_ov_capabilities(),
        validation={"dataset": dataset, "split": split, "samples": len(data)},
        batch_sizes=list(batch_sizes),
        candidates=rows,
        winners=choose_winners(rows),
    )


def _file_metadata(model: str):
    import onnx

    from ..contract import ModelMetadata

    if not Path(model).is_file():
        raise UsageError(f"{model}: no such ONNX file")
    props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    meta = ModelMetadata.from_props(props)
    if meta is None:
        raise UsageError(f"{model} has no capsdeploy metadata; tune takes files `capsdeploy export` wrote")
    return meta


def _ov_capabilities() -> list[str] | None:
    try:
        from ..runtime.ov_backend import device_capabilities

        return device_capabilities()
    except Exception:  # no OpenVINO here: the report says so
        return None


def choose_winners(rows: list[dict]) -> dict:
    """Throughput: the passing (candidate, batch) with the most images/s. Latency: the passing
    candidate with the lowest batch-1 p50. Repository: the throughput winner among the engines a
    Triton repository can hold (not PyTorch)."""
    passed = [r for r in rows if r["verdict"] == "passed" and r["timings"]]

    def best(pool):
        pairs = [(r, int(b), t) for r in pool for b, t in r["timings"].items()]
        if not pairs:
            return None
        r, b, t = max(pairs, key=lambda p: p[2]["images_per_second"])
        return _winner(r, b, t)

    latency = None
    at1 = [(r, r["timings"]["1"]) for r in passed if "1" in r["timings"]]
    if at1:
        r, t = min(at1, key=lambda p: p[1]["latency_ms_p50"])
        latency = _winner(r, 1, t)
    return {
        "throughput": best(passed),
        "latency": latency,
        "repository": best([r for r in passed if r["runtime"] in PLATFORM_OF]),
    }


def _winner(row: dict, batch: int, timing: dict) -> dict:
    curve = {int(b): t["images_per_second"] for b, t in row["timings"].items()}
    top = max(curve.values())
    return {
        "label": row["label"],
        "engine": row["engine"],
        "options": row["options"],
        "export": row["export"],
        "instances": row["instances"],
        "batch": batch,
        "images_per_second": timing["images_per_second"],
        "latency_ms_p50": timing["latency_ms_p50"],
        # Batch sizes within 5% of the best: where the batcher may cut without losing throughput.
        "near_best_batches": sorted(b for b, v in curve.items() if v >= 0.95 * top),
    }


# -- the tune file -> a repository ---------------------------------------------------------
def load_tune(path: str | Path) -> dict:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{p}: not a readable tune file ({e}); write one with `capsdeploy tune`") from None
    if not isinstance(doc, dict) or doc.get("version") != TUNE_VERSION or "winners" not in doc:
        raise UsageError(f"{p}: not a capsdeploy tune file (version {TUNE_VERSION})")
    return doc


def repository_plan(path: str | Path, batching) -> RepositoryPlan:
    """What `export --format triton --tuned tune.json` writes: the repository winner's platform,
    file, engine settings and batching (max_batch_size = its best batch; preferred sizes: the
    batches within 5% of the best). Refused when the file was tuned on another CPU."""
    from ..runtime.tuned import CPU_KEY, ENGINE_KEY, OPTIONS_KEY, check_same_cpu

    doc = load_tune(path)
    check_same_cpu(doc["cpu"], str(path))
    if doc.get("model"):
        # The repository is exported from the checkpoint; a file tuned as given may differ from
        # that export (routing iterations, input dtype, INT8 flavour), so it was not what was measured.
        raise UsageError(
            f"{path} was tuned on the file {doc['model']}; a repository is exported from the checkpoint, "
            "so re-run `capsdeploy tune --checkpoint RUN` without --model and pass that tune file"
        )
    win = doc["winners"].get("repository")
    if not win:
        raise UsageError(f"{path}: no candidate a repository can hold passed validation")
    spec = engine_spec(win["engine"])
    from .engine import BENCH_CALIB_SAMPLES

    export = {**spec.export_options(), **win["export"], "calib_samples": BENCH_CALIB_SAMPLES}
    if isinstance(export.get("int8_ops"), list | tuple):
        export["int8_ops"] = ",".join(export["int8_ops"])
    best = win["batch"]
    batching = replace(
        batching,
        max_batch_size=best,
        preferred_batch_sizes=tuple(b for b in win["near_best_batches"] if b <= best) or (best,),
        instances=win["instances"],
    )
    return RepositoryPlan(
        engine=win["label"],
        platform=PLATFORM_OF[spec.runtime],
        export=export,
        # f32 unless the engine or the winner says otherwise: OpenVINO's own default is bf16 where
        # the CPU has it, which is not what an f32 winner was measured at.
        ov_options={"inference_precision": "f32", **spec.options, **win["options"]}
        if spec.runtime == "ov"
        else None,
        batching=batching,
        parameters={
            ENGINE_KEY: win["engine"],
            OPTIONS_KEY: json.dumps(win["options"]),
            CPU_KEY: json.dumps(doc["cpu"]),
        },
    )


# -- output ---------------------------------------------------------------------------------
def format_tune(report: dict) -> str:
    """One line per candidate: verdict, accuracy, best throughput and batch, batch-1 p50."""
    head = f"{'candidate':<28}{'verdict':<10}{'tol':<6}{'acc':>8}{'top1':>9}{'best img/s':>12}{'@b':>5}{'b1 p50 ms':>11}"
    lines = [
        f"CPU: {report['cpu']['cpu_model']} [{' '.join(report['cpu']['cpu_flags'])}]; validated on "
        f"{report['validation']['samples']} {report['validation']['dataset']} digits",
        head,
    ]
    for r in report["candidates"]:
        v = r.get("validation") or {}
        acc = f"{v['accuracy']:.2%}" if v.get("accuracy") is not None else "-"
        top1 = f"{v['top1_agreement']:.2%}" if v.get("top1_agreement") is not None else "-"
        best, at, p50 = "-", "-", "-"
        if r["timings"]:
            b, t = max(r["timings"].items(), key=lambda kv: kv[1]["images_per_second"])
            best, at = f"{t['images_per_second']:.0f}", b
            if "1" in r["timings"]:
                p50 = f"{r['timings']['1']['latency_ms_p50']:.2f}"
        lines.append(
            f"{r['label']:<28}{r['verdict']:<10}{r.get('precision') or '-':<6}{acc:>8}{top1:>9}{best:>12}{at:>5}{p50:>11}"
        )
        if r["reason"]:
            lines.append(f"    rejected: {r['reason']}")
    w = report["winners"]
    for kind in ("throughput", "latency", "repository"):
        x = w.get(kind)
        if x:
            lines.append(
                f"{kind} winner: {x['label']} at batch {x['batch']} "
                f"({x['images_per_second']:.0f} img/s, p50 {x['latency_ms_p50']:.2f} ms)"
            )
        else:
            lines.append(f"{kind} winner: none passed")
    return "\n".join(lines)
