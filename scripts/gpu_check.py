"""The one prepared device check (run it through scripts/gpu_check.sh): on a CUDA machine
with PyTorch and CuPy but no TensorRT, check every GPU path that can run there and write one
JSON report.

Steps, each with its own time limit (the whole check stays under 8 minutes on an H200):
  environment   torch, CUDA device, CuPy, ONNX Runtime providers, TensorRT, cuda-python
  pytest_gpu    pytest -m gpu -rs on the GPU test files, CAPSDEPLOY_REQUIRE_GPU=1 (a skip
                for want of CUDA fails; TensorRT tests skip with their reason): torch-cuda
                validate, CUDA training with AMP, CUDA and CPU forward agreeing
  validate      capsdeploy validate --engine torch-cuda (FP32 tolerance, TF32 off)
  bench_engines capsdeploy bench engines --engines torch,torch-cuda (GPU peak fraction, GPU FP32 GEMM)
  bench_workers capsdeploy bench batcher --engine torch-cuda --instances 2 (every worker serves)
  standin_*     our CUDA-graph machinery (TrtBackend itself) driven by a stand-in engine whose
                enqueue launches a CuPy kernel on the stream it is given: buckets with
                interleaved batch sizes, clones in threads, more backends than PyTorch's
                stream pool, a forced capture failure and the allocator after it, H2D timing
                with a slow binding.

A stand-in is not TensorRT: these steps check capsdeploy's code around the engine (which
context and graph serve which batch, streams, capture, timing), never TensorRT's kernels.
``--dry-run`` checks on any machine that the check would start: imports, files, the plan.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # capsdeploy and tests/ from this checkout
TRAVEL_LIMIT = 64 << 20  # what the device tool sends: tracked and untracked-not-ignored files
GPU_TESTS = [
    "tests/runtime/test_gpu_trt.py",
    "tests/runtime/test_gpu_bench.py",
    "tests/serve/test_gpu_serve.py",
    "tests/train/test_gpu.py",
]
# Python packages the check imports on the device machine (its image has them all; see docs/gpu.md).
NEEDED = ["torch", "numpy", "click", "onnx", "tqdm", "safetensors", "PIL", "pytest", "google.protobuf"]
LIMITS_S = {  # per step; the sum (plus start-up) stays under 8 minutes
    "pytest_gpu": 180,
    "validate": 60,
    "bench_engines": 90,
    "bench_workers": 60,
}
STANDIN_STEPS = [
    "standin_buckets_interleaved",
    "standin_clones_in_threads",
    "standin_streams_beyond_pool",
    "standin_forced_capture_failure",
    "standin_h2d_with_slow_binding",
]
IMAGE = (1, 28, 28)
K = int(np.prod(IMAGE))


# -- the stand-in engine: the slice of TensorRT's Python API that TrtBackend calls ------------
_KERNEL = r"""
extern "C" __global__ void standin(const float* x, float* y, int n, int k) {
  int i = blockIdx.x, j = threadIdx.x;
  if (i >= n || j >= 10) return;
  float s = 0.f;
  for (int t = 0; t < k; ++t) s += x[(long long)i * k + t];
  y[i * 10 + j] = s * (float)(j + 1) / (float)k;
}
"""


def standin_trt():
    """The names TrtBackend looks up on the tensorrt module."""
    return types.SimpleNamespace(
        __version__="stand-in",
        TensorIOMode=types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        ExecutionContextAllocationStrategy=types.SimpleNamespace(USER_MANAGED="USER_MANAGED"),
        nptype=lambda dtype: np.float32,
    )


def reference(x: np.ndarray) -> np.ndarray:
    """What the stand-in computes: row sum x (class + 1) / pixels."""
    s = x.reshape(len(x), -1).astype(np.float64).sum(1)
    return (s[:, None] * np.arange(1, 11) / K).astype(np.float32)


class StandInEngine:
    """An engine with input ``image`` [N,1,28,28] and output ``scores`` [N,10] over a batch
    profile; its contexts launch a CuPy kernel on the stream handed to execute_async_v3."""

    def __init__(self, min_batch=1, max_batch=32, bind_delay_s=0.0, fail_capture_buckets=()):
        import cupy

        self.cupy = cupy
        self.min_batch, self.max_batch = min_batch, max_batch
        self.bind_delay_s = bind_delay_s
        self.fail_capture_buckets = set(fail_capture_buckets)
        self.kernel = cupy.RawKernel(_KERNEL, "standin")
        self.kernel.compile()  # never inside a capture (module loading is not capturable)
        self.num_io_tensors = 2
        self.device_memory_size_v2 = 1 << 20
        self.launches = 0

    def get_tensor_name(self, i):
        return ("image", "scores")[i]

    def get_tensor_mode(self, name):
        return "INPUT" if name == "image" else "OUTPUT"

    def get_tensor_profile_shape(self, name, profile):
        mid = max(self.min_batch, self.max_batch // 2)
        return [(b, *IMAGE) for b in (self.min_batch, mid, self.max_batch)]

    def get_tensor_dtype(self, name):
        return "float32"

    def get_tensor_shape(self, name):
        return (-1, *IMAGE) if name == "image" else (-1, 10)

    def create_execution_context(self, strategy=None):
        return StandInContext(self)


class StandInContext:
    def __init__(self, engine: StandInEngine):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_device_memory(self, ptr, size):
        self.memory = (ptr, size)

    def set_input_shape(self, name, shape):
        time.sleep(self.engine.bind_delay_s)  # a slow host-side binding (the H2D check)
        if not self.engine.min_batch <= shape[0] <= self.engine.max_batch:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        n = self.shapes["image"][0]
        return (n, 10) if name == "scores" else self.shapes[name]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_ptr):
        import torch

        cupy, n = self.engine.cupy, self.shapes["image"][0]
        if torch.cuda.is_current_stream_capturing() and n in self.engine.fail_capture_buckets:
            junk = torch.empty(1 << 20, device="cuda")  # lands in the capture's private pool
            # Prohibited during a capture: invalidates it, as an uncapturable enqueue would.
            with contextlib.suppress(cupy.cuda.runtime.CUDARuntimeError):
                cupy.cuda.runtime.deviceSynchronize()
            del junk
            return False
        dev = torch.cuda.current_device()

        def view(name, count):
            mem = cupy.cuda.UnownedMemory(self.addresses[name], count * 4, self, device_id=dev)
            return cupy.ndarray((count,), cupy.float32, cupy.cuda.MemoryPointer(mem, 0))

        x, y = view("image", n * K), view("scores", n * 10)
        with cupy.cuda.ExternalStream(int(stream_ptr), dev):
            self.engine.kernel((n,), (32,), (x, y, np.int32(n), np.int32(K)))
        self.engine.launches += 1
        return True


def standin_plan(folder: Path) -> Path:
    """A plan path whose sidecar TrtBackend reads (the engine itself is passed in)."""
    plan = folder / "standin.plan"
    plan.write_bytes(b"stand-in")
    Path(str(plan) + ".json").write_text(json.dumps({"onnx_metadata": {}, "math": {"tf32": False}}))
    return plan


def _backend(plan, engine, graphs):
    from capsdeploy.runtime.trt.backend import TrtBackend

    return TrtBackend(plan, cuda_graphs=graphs, _engine=engine, _trt=standin_trt())


def _x(n, seed):
    """Pixels k/256: every partial sum of 784 of them is exact in float32 (18 significant bits),
    so the kernel's result differs from the float64 reference by the final rounding alone."""
    return (np.random.default_rng(seed).integers(0, 256, (n, *IMAGE)) / 256).astype(np.float32)


def _err(backend, x):
    """Largest error relative to the largest reference value."""
    ref = reference(x)
    return float(np.abs(backend.infer({"image": x})["scores"] - ref).max() / max(np.abs(ref).max(), 1e-6))


# -- the stand-in steps: each returns (ok, details) ---------------------------------------------
# A few float32 roundings; a wrong row, a stale shape or a pad row returned instead of the
# request's is off by a percent or more.
TOL = 1e-6


def standin_buckets_interleaved(tmp: Path):
    plan, engine = standin_plan(tmp), StandInEngine(max_batch=32)
    eager, graphs = _backend(plan, engine, False), _backend(plan, engine, True)
    errors = []
    for i, n in enumerate((1, 7, 1, 32, 7, 3, 32, 1)):
        x = _x(n, i)
        errors.append({"batch": n, "eager": _err(eager, x), "graphs": _err(graphs, x)})
    worst = max(max(e["eager"], e["graphs"]) for e in errors)
    state = graphs.capture_state
    ok = worst <= TOL and state == {1: True, 4: True, 8: True, 32: True}
    return ok, {"max_abs_error": worst, "capture_state": state, "per_batch": errors}


def standin_clones_in_threads(tmp: Path):
    plan, engine = standin_plan(tmp), StandInEngine(max_batch=32)
    base = _backend(plan, engine, True)
    workers = [base] + [base.clone() for _ in range(3)]
    errors, worst = [], [0.0] * len(workers)

    def run(w, seed):
        try:
            for rep in range(20):
                for k, n in enumerate((5, 1, 16, 5, 3, 32)):
                    worst[seed] = max(worst[seed], _err(workers[w], _x(n, 1000 * seed + 10 * rep + k)))
        except Exception as e:
            errors.append(f"worker {w}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(i, i)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    states = [w.capture_state for w in workers]
    streams = {int(w.stream.cuda_stream) for w in workers}
    want = {1: True, 4: True, 8: True, 16: True, 32: True}
    ok = not errors and max(worst) <= TOL and all(s == want for s in states) and len(streams) == len(workers)
    return ok, {
        "errors": errors,
        "max_abs_error": max(worst),
        "capture_state": states,
        "streams": len(streams),
    }


def standin_streams_beyond_pool(tmp: Path):
    from capsdeploy.errors import UsageError
    from capsdeploy.runtime.trt.backend import STREAM_POOL_SIZE

    plan, engine = standin_plan(tmp), StandInEngine(max_batch=8)
    held, refused = [], None
    try:
        for _ in range(STREAM_POOL_SIZE + 8):
            held.append(_backend(plan, engine, False))
    except UsageError as e:
        refused = str(e)
    streams = [int(b.stream.cuda_stream) for b in held]
    x = _x(4, 0)
    worst = max(_err(b, x) for b in held)
    for b in held:
        b.close()
    again = _backend(plan, engine, False)  # the released streams are handed out again
    ok = len(set(streams)) == len(streams) and worst <= TOL and len(held) >= STREAM_POOL_SIZE
    ok = ok and (refused is None) == (len(held) == STREAM_POOL_SIZE + 8)
    details = {
        "backends": len(held),
        "distinct_streams": len(set(streams)),
        "beyond_pool": "cuda-python dedicated streams" if refused is None else f"refused: {refused}",
        "max_abs_error": worst,
        "after_release_ok": _err(again, x) <= TOL,
    }
    return ok and details["after_release_ok"], details


def _pool_segments(torch, pool) -> int:
    snap = torch.cuda.memory._snapshot()
    return sum(1 for s in snap.get("segments", []) if tuple(s.get("segment_pool_id", ())) == tuple(pool))


def standin_forced_capture_failure(tmp: Path):
    """Bucket 8's capture is made to fail; it must fall back to eager with correct results,
    hand the allocator back (no segment left in its private pool after empty_cache), and
    later captures must still work. Beside it, the same failure without our release, to
    show the check can fail (PyTorch's capture_end skips endAllocateToPool when
    cudaStreamEndCapture fails)."""
    import torch

    plan, engine = standin_plan(tmp), StandInEngine(max_batch=32, fail_capture_buckets={8})
    b = _backend(plan, engine, True)
    err_failed = _err(b, _x(5, 0))  # bucket 8: capture fails, runs eagerly
    err_again = _err(b, _x(6, 1))  # bucket 8 again: eager, no second capture attempt
    err_next = _err(b, _x(16, 2))  # bucket 16: captures fine after the failure
    failure = b.capture_failures[0] if b.capture_failures else {}
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    left = _pool_segments(torch, failure["pool"]) if failure else None
    # The contrast: PyTorch alone after the same failure.
    raw_pool, raw_left, g = torch.cuda.graph_pool_handle(), None, None
    try:
        g, s = torch.cuda.CUDAGraph(), torch.cuda.Stream()
        with torch.cuda.stream(s):
            g.capture_begin(pool=raw_pool, capture_error_mode="thread_local")
            junk = torch.empty(1 << 20, device="cuda")
            with contextlib.suppress(engine.cupy.cuda.runtime.CUDARuntimeError):
                engine.cupy.cuda.runtime.deviceSynchronize()
            del junk
            with contextlib.suppress(Exception):
                g.capture_end()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        raw_left = _pool_segments(torch, raw_pool)
    finally:  # leave the process clean for the next steps
        from capsdeploy.runtime.trt.backend import _clear_cuda_error, release_failed_capture

        if g is not None:
            release_failed_capture(torch, g, torch.cuda.current_device(), raw_pool)
        _clear_cuda_error()
    ok = (
        max(err_failed, err_again, err_next) <= TOL
        and b.capture_state == {8: False, 16: True}
        and failure.get("allocator_released") is True
        and left == 0
    )
    return ok, {
        "capture_state": b.capture_state,
        "failure": failure,
        "segments_left_in_failed_pool": left,
        "without_release_segments_left": raw_left,
        "max_abs_error": max(err_failed, err_again, err_next),
    }


def standin_h2d_with_slow_binding(tmp: Path):
    """Binding sleeps 20 ms per set_input_shape; the H2D phase must not contain it."""
    plan, engine = standin_plan(tmp), StandInEngine(max_batch=32, bind_delay_s=0.02)
    out = {}
    ok = True
    for graphs in (False, True):
        b = _backend(plan, engine, graphs)
        x = _x(32, 0)
        b.infer({"image": x})  # capture (graphs) / warm-up
        b.record_phases = True
        phases, host = [], []
        for _ in range(10):
            t0 = time.perf_counter()
            b.infer({"image": x})
            host.append((time.perf_counter() - t0) * 1e3)
            phases.append(b.last_phases)
        h2d = float(np.median([p["h2d_ms"] for p in phases]))
        compute = float(np.median([p["compute_ms"] for p in phases]))
        out["graphs" if graphs else "eager"] = {
            "h2d_ms_p50": h2d,
            "compute_ms_p50": compute,
            "host_ms_p50": float(np.median(host)),
        }
        ok = ok and 0 < h2d < 5.0 and compute > 0  # the 20 ms binding is outside the copy
    ok = ok and out["eager"]["host_ms_p50"] >= 20.0  # the binding did run, and slowly
    return ok, out


# -- the CLI steps -----------------------------------------------------------------------------
def _run(cmd, limit, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)


def _cli(*args, limit):
    proc = _run([sys.executable, "-m", "capsdeploy", *map(str, args)], limit)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def pytest_gpu(out: Path):
    junit = out / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-rs", "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", *GPU_TESTS]  # fmt: skip
    proc = _run(cmd, LIMITS_S["pytest_gpu"], {"CAPSDEPLOY_REQUIRE_GPU": "1"})
    outcomes = _junit_outcomes(junit)
    ran = [t for t, o in outcomes.items() if o == "passed"]
    return proc.returncode == 0 and ran, {
        "returncode": proc.returncode,
        "outcomes": outcomes,
        "tail": proc.stdout[-3000:],
    }


def _junit_outcomes(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    if not path.is_file():
        return {}
    out = {}
    for case in ET.parse(path).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        skipped = case.find("skipped")
        if kinds & {"failure", "error"}:
            out[name] = "failed"
        elif skipped is not None:
            out[name] = "skipped: " + (skipped.get("message") or "")[:200]
        else:
            out[name] = "passed"
    return out


def validate(run: Path):
    r = _cli("validate", "--engine", "torch-cuda", "--checkpoint", run, "--num-samples", 256,
             "--json", "-", limit=LIMITS_S["validate"])  # fmt: skip
    err = r["outputs"]["scores"]["max_abs_error"]
    return bool(r["passed"]) and err <= 1e-5 and r["math"] == "FP32 (TF32 off)", {
        "passed": r["passed"],
        "math": r["math"],
        "scores_max_abs_error": err,
    }


def bench_engines(run: Path):
    r = _cli("bench", "engines", "--checkpoint", run, "--engines", "torch,torch-cuda", "--batch-sizes", "1,32,256",
             "--warmup-s", 0.2, "--duration-s", 1, "--json", "-", limit=LIMITS_S["bench_engines"])  # fmt: skip
    rows = [
        {k: row.get(k) for k in ("engine", "batch", "latency_ms_p50", "images_per_second", "speedup_vs_torch",
                                 "effective_gflops", "fraction_of_fp32_peak", "cv")}
        for row in r["results"]
    ]  # fmt: skip
    gpu_peak = r.get("peak_fp32_gemm_gflops_gpu")
    cuda_rows = [row for row in rows if row["engine"] == "torch-cuda"]
    ok = (
        bool(gpu_peak)
        and len(cuda_rows) == 3
        and all(0 < (row["fraction_of_fp32_peak"] or 0) < 1 for row in cuda_rows)
    )
    return ok, {"peak_fp32_gemm_gflops_cpu": r["peak_fp32_gemm_gflops"], "peak_fp32_gemm_gflops_gpu": gpu_peak,
                "rows": rows, "warnings": r["warnings"]}  # fmt: skip


def bench_workers(run: Path):
    r = _cli("bench", "batcher", "--engine", "torch-cuda", "--checkpoint", run, "--clients", 16, "--requests", 8,
             "--repeats", 2, "--instances", 2, "--json", "-", limit=LIMITS_S["bench_workers"])  # fmt: skip
    per_worker = r["modes"]["dynamic_batcher"]["batches_per_worker"]
    return len(per_worker) == 2 and all(n > 0 for n in per_worker), {
        "batches_per_worker": per_worker,
        "batcher_speedup_median": r["batcher_speedup_median"],
        "modes": r["modes"],
    }


# -- environment, dry run, driver -------------------------------------------------------------
def environment() -> dict:
    import importlib

    env = {"python": sys.version.split()[0], "missing": []}
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as e:
            env["missing"].append(f"{name} ({type(e).__name__}: {e})")
    try:
        import torch

        env["torch"] = torch.__version__
        env["cuda_available"] = torch.cuda.is_available()
        if env["cuda_available"]:
            p = torch.cuda.get_device_properties(0)
            env["gpu"] = p.name
            env["compute_capability"] = f"{p.major}.{p.minor}"
            env["torch_cuda"] = torch.version.cuda
    except Exception as e:
        env["torch"] = f"unusable: {e}"
        env["cuda_available"] = False
    for name, mod in (("cupy", "cupy"), ("onnxruntime", "onnxruntime")):
        try:
            m = importlib.import_module(mod)
            env[name] = m.__version__
            if name == "onnxruntime":
                env["onnxruntime_providers"] = m.get_available_providers()
        except Exception as e:
            env[name] = f"absent ({type(e).__name__})"
    from capsdeploy.runtime.trt.backend import _cudart
    from capsdeploy.runtime.trt.environment import tensorrt_status

    env["tensorrt"] = tensorrt_status()[1] or "present"
    env["cuda_python"] = _cudart() is not None
    return env


def plan() -> list[str]:
    return ["environment", "pytest_gpu", "validate", "bench_engines", "bench_workers", *STANDIN_STEPS]


def dry_run(report: dict) -> bool:
    """Would the check start? Its files, imports and steps, without a GPU."""
    problems = []
    for f in [*GPU_TESTS, "scripts/gpu_check.sh"]:
        if not (ROOT / f).is_file():
            problems.append(f"missing {f}")
    env = environment()
    problems += [f"cannot import {m}" for m in env["missing"]]
    import capsdeploy.runtime.trt.backend as backend

    for name in ("acquire_stream", "release_failed_capture", "STREAM_POOL_SIZE"):
        if not hasattr(backend, name):
            problems.append(f"capsdeploy.runtime.trt.backend lacks {name}")
    g = globals()
    problems += [f"no step function {s}" for s in plan()[1:] if not callable(g.get(s))]
    # The stand-in satisfies what TrtBackend reads (names only; CuPy and CUDA are not needed here).
    trt = standin_trt()
    for attr in ("TensorIOMode", "ExecutionContextAllocationStrategy", "nptype"):
        if not hasattr(trt, attr):
            problems.append(f"stand-in tensorrt lacks {attr}")
    size = _travel_size()
    if size > TRAVEL_LIMIT:
        problems.append(f"the checkout is {size >> 20} MiB; at most {TRAVEL_LIMIT >> 20} MiB travels")
    collect = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                    *GPU_TESTS], 120)  # fmt: skip
    collected = [line for line in collect.stdout.splitlines() if "::" in line]
    if collect.returncode != 0 or not collected:
        problems.append(
            f"pytest could not collect the GPU tests: {collect.stdout[-500:]} {collect.stderr[-500:]}"
        )
    report.update(dry_run=True, travel_bytes=size, environment=env, steps_planned=plan(), gpu_tests_collected=collected,
                  limits_s=LIMITS_S, problems=problems, ok=not problems)  # fmt: skip
    return not problems


def _travel_size() -> int:
    """Bytes of the files the device tool would send (git's tracked and untracked-not-ignored)."""
    proc = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True
    )
    if proc.returncode != 0:
        return 0  # not a git checkout (a copy): nothing to measure
    names = [n for n in proc.stdout.decode().split("\0") if n]
    return sum((ROOT / n).stat().st_size for n in names if (ROOT / n).is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="check that the check would start; no GPU needed")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="folder for the report")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gpu_check.json"
    t_start = time.perf_counter()
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": {}}

    def save():
        report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        path.write_text(json.dumps(report, indent=2, default=str))

    if args.dry_run:
        ok = dry_run(report)
        save()
        print(json.dumps({"ok": ok, "problems": report["problems"], "report": str(path)}, indent=2))
        return 0 if ok else 1
    report["environment"] = environment()
    save()
    if not report["environment"].get("cuda_available"):
        report["ok"] = False
        report["error"] = "no CUDA device visible to PyTorch"
        save()
        print(f"gpu_check: no CUDA device; report {path}")
        return 1
    with tempfile.TemporaryDirectory(prefix="capsdeploy-gpu-check-") as tmp:
        tmp = Path(tmp)
        from tests.conftest import make_run

        run = make_run(tmp / "run")
        steps = [
            ("pytest_gpu", lambda: pytest_gpu(out)),
            ("validate", lambda: validate(run)),
            ("bench_engines", lambda: bench_engines(run)),
            ("bench_workers", lambda: bench_workers(run)),
        ] + [(name, lambda name=name: globals()[name](_fresh(tmp, name))) for name in STANDIN_STEPS]
        for name, step in steps:
            t0 = time.perf_counter()
            print(f"gpu_check: {name} ...", flush=True)
            try:
                ok, details = step()
                entry = {"ok": bool(ok), "details": details}
            except Exception as e:
                entry = {
                    "ok": False,
                    "error": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc()[-3000:],
                }
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            report["steps"][name] = entry
            print(f"gpu_check: {name} {'ok' if entry['ok'] else 'FAILED'} ({entry['seconds']} s)", flush=True)
            save()
    report["ok"] = all(s["ok"] for s in report["steps"].values())
    save()
    print(f"gpu_check: {'all steps ok' if report['ok'] else 'FAILED'}; report {path}")
    return 0 if report["ok"] else 1


def _fresh(tmp: Path, name: str) -> Path:
    d = tmp / name
    d.mkdir()
    return d


if __name__ == "__main__":
    sys.exit(main())
