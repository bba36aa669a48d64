"""HTTP vs gRPC vs system shared memory on one `capsdeploy serve`, at one concurrency (64 by
default): capsdeploy's own load generator (`bench http --url http://`, `bench http --url grpc://`) and
Triton's perf_analyzer (HTTP, gRPC, gRPC + --shared-memory system), whose reports (with the
server-side statistics) are printed as they come.

    bash scripts/install_perf_analyzer.sh
    python scripts/serve_protocols.py REPO [--concurrency 64] [--engine auto] [--json docs/bench/protocols.json]

Beside each client's throughput it prints where the CPU went during that client's run, per image
served (Linux /proc): the server's event loop (HTTP/gRPC handling), the whole server process
(inference threads included), and the client process. On a machine where client and server share
the cores, that is what the inference threads do not get.

`--uvicorn-http h11 --uvicorn-loop asyncio` serves with uvicorn's pure-Python parser and
asyncio's loop instead of what `requirements/runtime.txt` installs (httptools, uvloop): an A/B
of the front end's CPU cost.

Run it on a quiet machine; numbers from a shared one are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
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


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU of a process (all its threads), or of one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def inferences(url: str) -> int:
    """Images the server has inferred so far (Triton's statistics extension)."""
    with urllib.request.urlopen(f"{url}/v2/models/stats", timeout=10) as r:
        return sum(m["inference_count"] for m in json.load(r)["model_stats"])


def with_cpu(srv: ServerProcess, run) -> dict:
    """``run()``'s row, plus the CPU each party spent per image served while it ran."""
    pid = srv.proc.pid

    def snapshot():
        t = os.times()  # the clients are this script's child processes
        return (
            cpu_seconds(pid),
            cpu_seconds(pid, pid),
            t.children_user + t.children_system,
            inferences(srv.url),
        )

    before = snapshot()
    row = run()
    after = snapshot()
    n = max(after[3] - before[3], 1)
    row["cpu_us_per_image"] = {
        "server": round((after[0] - before[0]) / n * 1e6),
        "server_event_loop": round((after[1] - before[1]) / n * 1e6),
        "client": round((after[2] - before[2]) / n * 1e6),
    }
    return row


def launcher(http: str, loop: str) -> list[str] | None:
    """Python arguments that run `capsdeploy` with uvicorn's parser and loop forced (None: auto)."""
    if http == "auto" and loop == "auto":
        return None
    code = (
        "import sys, uvicorn\n"
        "init = uvicorn.Config.__init__\n"
        f"uvicorn.Config.__init__ = lambda self, *a, **k: init(self, *a, **{{**k, 'http': {http!r}, 'loop': {loop!r}}})\n"
        "from capsdeploy.cli.main import main\n"
        "sys.argv[0] = 'capsdeploy'\n"
        "main()\n"
    )
    return ["-c", code]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--engine", default="ort", help="`serve --engine` (auto: a tuned repository's engine)")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--stability-percentage", type=float, default=10, help="perf_analyzer's (default 10)")
    ap.add_argument("--uvicorn-http", choices=["auto", "h11", "httptools"], default="auto")
    ap.add_argument("--uvicorn-loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = ap.parse_args()
    if not PERF_ANALYZER.is_file():
        raise SystemExit(f"{PERF_ANALYZER} missing: run bash scripts/install_perf_analyzer.sh")
    c = args.concurrency
    with tempfile.TemporaryDirectory() as logs:
        srv = ServerProcess.start(
            [args.repo, "--engine", args.engine, "--drain-delay", "0", "--log-level", "warning"],
            logs,
            launcher=launcher(args.uvicorn_http, args.uvicorn_loop),
        )
        try:
            stab = args.stability_percentage
            clients = {
                "bench http (binary)": lambda: bench(srv.url, c),
                "bench grpc": lambda: bench(srv.grpc_url, c),
                "perf_analyzer http": lambda: perf_analyzer(srv.host_port, "http", c, False, stab),
                "perf_analyzer grpc": lambda: perf_analyzer(srv.grpc_host_port, "grpc", c, False, stab),
                "perf_analyzer grpc + system shm": lambda: perf_analyzer(
                    srv.grpc_host_port, "grpc", c, True, stab
                ),
                "perf_analyzer http + system shm": lambda: perf_analyzer(
                    srv.host_port, "http", c, True, stab
                ),
            }
            rows = {name: with_cpu(srv, run) for name, run in clients.items()}
        finally:
            srv.stop()
    front = f"uvicorn http={args.uvicorn_http} loop={args.uvicorn_loop}"
    print(f"\nconcurrency {c}, one `capsdeploy serve --engine {args.engine}` of {args.repo} ({front})")
    print(f"{'client':<34}{'img/s':>10}  {'CPU us per image: loop / server / client':<42}latency")
    for name, r in rows.items():
        lat = (
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
            if "p50_ms" in r
            else f"avg {r['avg_latency_ms']} ms"
        )
        cpu = r["cpu_us_per_image"]
        split = f"{cpu['server_event_loop']} / {cpu['server']} / {cpu['client']}"
        print(f"{name:<34}{r['images_per_second']:>10.1f}  {split:<42}{lat}")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "concurrency": c,
                    "repo": args.repo,
                    "uvicorn": {"http": args.uvicorn_http, "loop": args.uvicorn_loop},
                    "rows": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
