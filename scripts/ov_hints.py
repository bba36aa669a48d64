"""OpenVINO alone on one model file: its defaults, its THROUGHPUT hint, and the settings `tune` chose
on the 2-core AVX-512 machine of docs/results.md (THROUGHPUT, 2 streams, bf16), each fed by OpenVINO's own AsyncInferQueue with the number of requests the compiled model asks
for (OPTIMAL_NUMBER_OF_INFER_REQUESTS), in interleaved rounds; medians of the rounds.

It answers: how much of the tuned engine's margin over `ov-defaults-int8` (OpenVINO with every
default and one caller) would a user get from OpenVINO's THROUGHPUT hint alone?

    python scripts/ov_hints.py MODEL.onnx [--batch 32] [--rounds 3] [--seconds 2.5]

Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import openvino as ov

CONFIGS = {
    "defaults": {},
    "THROUGHPUT hint": {"PERFORMANCE_HINT": "THROUGHPUT"},
    "THROUGHPUT, 2 streams, bf16": {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": 2,
        "INFERENCE_PRECISION_HINT": "bf16",
    },
}


def images_per_second(compiled, x: np.ndarray, seconds: float) -> float:
    n = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    queue = ov.AsyncInferQueue(compiled, n)
    for _ in range(2 * n):  # warm-up
        queue.start_async({0: x})
    queue.wait_all()
    t0, count = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        queue.start_async({0: x})  # blocks while all n requests are busy
        count += 1
    queue.wait_all()
    return count * len(x) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.5)
    args = ap.parse_args()
    core = ov.Core()
    x = np.random.default_rng(0).random((args.batch, 1, 28, 28), dtype=np.float32)
    compiled = {}
    for name, config in CONFIGS.items():
        model = core.read_model(args.model)
        model.reshape({model.inputs[0].get_any_name(): list(x.shape)})
        if "bf16" in config.get("INFERENCE_PRECISION_HINT", "") and "BF16" not in core.get_property(
            "CPU", "OPTIMIZATION_CAPABILITIES"
        ):
            print(f"{name}: skipped, this CPU has no bf16")
            continue
        compiled[name] = core.compile_model(model, "CPU", config)
    rates: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(args.rounds):
        for name, c in compiled.items():
            rates[name].append(images_per_second(c, x, args.seconds))
    print(f"OpenVINO {ov.get_version()}, {args.model}, batch {args.batch}, {args.rounds} rounds")
    base = statistics.median(rates["defaults"])
    for name, r in rates.items():
        c = compiled[name]
        med = statistics.median(r)
        print(
            f"{name:<50} {med:8.1f} img/s  x{med / base:.2f}  "
            f"(streams {c.get_property('NUM_STREAMS')}, requests "
            f"{c.get_property('OPTIMAL_NUMBER_OF_INFER_REQUESTS')}, "
            f"precision {c.get_property('INFERENCE_PRECISION_HINT').get_type_name()}; rounds {', '.join(f'{v:.0f}' for v in r)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
