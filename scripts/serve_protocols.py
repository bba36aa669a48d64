"""HTTP vs gRPC vs system shared memory on one `capsdeploy serve`, at one concurrency (64 by
default): capsdeploy's own load generator (`bench http --url http://`, `bench http --url grpc://`) and
Triton's perf_analyzer (HTTP, gRPC, gRPC + --shared-memory system), whose reports (with the
server-side statistics) are printed as they come.

    bash scripts/install_perf_analyzer.sh
    python scripts/serve_protocols.py REPO [--concurrency 64] [--engine auto] [--json docs/bench/protocols.json]

Run it on a quiet machine; numbers from a shared one are noise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from capsdeploy.serve.process import ServerProcess

PERF_ANALYZER = Path(__file__).resolve().parents[1] / ".tools" / "perf_analyzer" / "perf_analyzer"


def bench(url: str, concurrency: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "capsdeploy",
            "bench",
            "http",
            "--url",
            url,
            "--concurrency",
            str(concurrency),
            "--window-s",
            "3",
            "--json",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    level = json.loads(out)["levels"][0]
    return {
        "images_per_second": level["images_per_second"],
        "p50_ms": level["latency_ms_p50"],
        "p99_ms": level["latency_ms_p99"],
        "errors": level["errors"],
        "stable": level["stable"],
    }


def perf_analyzer(host_port: str, protocol: str, concurrency: int, shm: bool, stability: float) -> dict:
    cmd = [
        str(PERF_ANALYZER),
        "-m",
        "capsnet",
        "-u",
        host_port,
        "-i",
        protocol,
        "--concurrency-range",
        str(concurrency),
        "--measurement-interval",
        "3000",
        "--stability-percentage",
        str(stability),
    ]
    if shm:
        cmd += ["--shared-memory", "system"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(f"\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"perf_analyzer failed (exit {proc.returncode})")
    m = re.search(r"Concurrency: \d+, throughput: ([\d.]+) infer/sec, latency (\d+) usec", proc.stdout)
    return {"images_per_second": float(m.group(1)), "avg_latency_ms": int(m.group(2)) / 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--engine", default="ort", help="`serve --engine` (auto: a tuned repository's engine)")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--stability-percentage", type=float, default=10, help="perf_analyzer's (default 10)")
    args = ap.parse_args()
    if not PERF_ANALYZER.is_file():
        raise SystemExit(f"{PERF_ANALYZER} missing: run bash scripts/install_perf_analyzer.sh")
    c = args.concurrency
    with tempfile.TemporaryDirectory() as logs:
        srv = ServerProcess.start(
            [args.repo, "--engine", args.engine, "--drain-delay", "0", "--log-level", "warning"], logs
        )
        try:
            rows = {
                "bench http (binary)": bench(srv.url, c),
                "bench grpc": bench(srv.grpc_url, c),
                "perf_analyzer http": perf_analyzer(
                    srv.host_port, "http", c, False, args.stability_percentage
                ),
                "perf_analyzer grpc": perf_analyzer(
                    srv.grpc_host_port, "grpc", c, False, args.stability_percentage
                ),
                "perf_analyzer grpc + system shm": perf_analyzer(
                    srv.grpc_host_port, "grpc", c, True, args.stability_percentage
                ),
                "perf_analyzer http + system shm": perf_analyzer(
                    srv.host_port, "http", c, True, args.stability_percentage
                ),
            }
        finally:
            srv.stop()
    print(f"\nconcurrency {c}, one `capsdeploy serve --engine {args.engine}` of {args.repo}")
    print(f"{'client':<34}{'img/s':>10}  latency")
    for name, r in rows.items():
        lat = (
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
            if "p50_ms" in r
            else f"avg {r['avg_latency_ms']} ms"
        )
        print(f"{name:<34}{r['images_per_second']:>10.1f}  {lat}")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"concurrency": c, "repo": args.repo, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
