"""Closed-loop load with the protocol's reference client, as the issue asks: one
tritonclient.http client per thread, binary single-image requests, for a fixed time.

    python scripts/tritonclient_load.py URL [--model capsnet] [--threads 64] [--seconds 10] [--json OUT]

Prints (and writes) requests/s and client-side latency percentiles; `capsdeploy bench http`
is the full tool (windows, stability rule, open loop), this is the cross-check.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np
import tritonclient.http as http


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--model", default="capsnet")
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    url = a.url.removeprefix("http://")
    meta = http.InferenceServerClient(url).get_model_metadata(a.model)
    spec = meta["inputs"][0]
    shape = [1, *[int(d) for d in spec["shape"][1:]]]
    dtype = {"FP32": np.float32, "UINT8": np.uint8, "FP16": np.float16}[spec["datatype"]]
    x = (np.random.default_rng(0).random(shape) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    start = time.perf_counter()
    measure_from, stop_at = start + a.warmup, start + a.warmup + a.seconds
    latencies: list[list[float]] = [[] for _ in range(a.threads)]
    errors = [0] * a.threads

    def worker(i: int) -> None:
        client = http.InferenceServerClient(url, connection_timeout=60, network_timeout=60)
        inp = http.InferInput(spec["name"], shape, spec["datatype"])
        inp.set_data_from_numpy(x, binary_data=True)
        out = [http.InferRequestedOutput("scores", binary_data=True)]
        while (t0 := time.perf_counter()) < stop_at:
            try:
                client.infer(a.model, [inp], outputs=out)
            except Exception:
                errors[i] += 1
                continue
            if t0 >= measure_from:
                latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = np.concatenate([np.asarray(v) for v in latencies]) * 1e3
    report = {
        "client": "tritonclient.http, one client per thread",
        "threads": a.threads,
        "seconds": a.seconds,
        "requests": int(lat.size),
        "errors": int(sum(errors)),
        "images_per_second": round(lat.size / a.seconds, 1),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 2),
    }
    print(json.dumps(report, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
