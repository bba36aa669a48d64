"""A rolling restart under load, as Kubernetes does one: N `capsdeploy serve` replicas of one
repository behind HAProxy (active health checks on /v2/health/ready), a closed-loop load of
single-image tritonclient requests, and three phases:

  baseline   load only;
  rolling    each replica in turn gets SIGTERM, drains, exits, and is started again on its port;
  sigkill    one replica is killed with SIGKILL under load (and started again afterwards).

Prints (and with --json writes) per phase: requests, failures, p50/p99 latency, the replicas'
exit codes. Traffic stays on 127.0.0.1. Needs Debian's haproxy.

    python scripts/rolling_restart.py REPO --replicas 3 --concurrency 32 --rolling-s 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

HAPROXY_CFG = """\
global
    maxconn 4096
    log stderr format raw local0
defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    # A request that meets a closed or closing replica (refused connection, a keep-alive
    # connection closed under it, a 503 while its batcher drains) is sent again, to another one.
{retries}
frontend capsdeploy
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance leastconn
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
"""


RETRIES = """\
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


class Replica:
    def __init__(self, repo: Path, port: int, log_dir: Path, serve_args: list[str]):
        self.repo, self.port, self.log_dir, self.serve_args = repo, port, log_dir, serve_args
        self.proc = None

    def start(self) -> None:
        from capsdeploy.serve.process import ServerProcess

        self.proc = ServerProcess.start([self.repo, *self.serve_args], self.log_dir, port=self.port)
        wait_http(f"http://127.0.0.1:{self.port}/v2/health/ready", 60)

    def stop(self, sig=signal.SIGTERM) -> int:
        return self.proc.stop(sig)


class Load:
    """Closed loop: each client thread sends its next request when the previous one returned."""

    def __init__(self, url: str, model: str, concurrency: int, x: np.ndarray):
        self.url, self.model, self.concurrency, self.x = url, model, concurrency, x
        self.records: list[tuple[float, float, bool, str]] = []  # (start, seconds, ok, error)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(concurrency)]

    def client(self) -> None:
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(self.url, network_timeout=60, connection_timeout=60)
        inp = httpclient.InferInput("image", list(self.x.shape), "FP32")
        inp.set_data_from_numpy(self.x, binary_data=True)
        out = [httpclient.InferRequestedOutput("scores", binary_data=True)]
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                scores = client.infer(self.model, [inp], outputs=out).as_numpy("scores")
                ok, err = scores is not None and scores.shape[0] == 1, ""
            except Exception as e:  # every failure is counted and named, none stops the load
                ok, err = False, f"{type(e).__name__}: {str(e)[:200]}"
                client.close()
                client = httpclient.InferenceServerClient(self.url, network_timeout=60, connection_timeout=60)
            with self.lock:
                self.records.append((t0, time.monotonic() - t0, ok, err))
        client.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(90)

    def window(self, t0: float, t1: float) -> dict:
        """The requests that ended in [t0, t1). By end, not start: a request still in flight
        when the next phase begins (a SIGKILL) meets that phase, and counts there."""
        with self.lock:
            rows = [r for r in self.records if t0 <= r[0] + r[1] < t1]
        lat = np.array([r[1] for r in rows if r[2]]) * 1e3
        errors: dict[str, int] = {}
        for r in rows:
            if not r[2]:
                errors[r[3]] = errors.get(r[3], 0) + 1
        return {
            "seconds": round(t1 - t0, 2),
            "requests": len(rows),
            "failed": len(rows) - len(lat),
            "throughput_rps": round(len(lat) / (t1 - t0), 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "errors": errors,
        }


def _anomalies(log: Path, limit: int = 20) -> list[str]:
    """HAProxy's log lines (option httplog) for requests that did not end normally: a status
    other than 200, or termination flags other than "----" (e.g. "SD--": the server aborted
    during the data phase). Where a lost request came from."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if '"POST' not in line or len(parts) < 10:
            continue
        status, flags = parts[5], parts[9]
        if status != "200" or flags != "----":
            out.append(line)
    return out[:limit]


def _replica_log(work: Path, limit: int = 40) -> list[str]:
    """What the replicas logged at warning level and above (their logs are in ``work``): an
    exception in the ASGI app after a response started is one way a response ends after its
    headers (uvicorn then closes the connection)."""
    out = []
    for log in sorted(work.glob("serve-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.strip():
                out.append(f"{log.name}: {line}")
    return out[:limit]


def run(
    repo: Path,
    replicas: int,
    concurrency: int,
    baseline_s: float,
    rolling_s: float,
    sigkill_s: float,
    serve_args: list[str],
    model: str = "capsnet",
    l7_retries: bool = True,
) -> dict:
    if shutil.which("haproxy") is None:
        raise SystemExit("rolling_restart.py needs haproxy (apt-get install haproxy)")
    work = Path(tempfile.mkdtemp(prefix="capsdeploy-rolling-"))
    ports = [free_port() for _ in range(replicas)]
    front = free_port()
    pool = [Replica(repo, p, work, serve_args) for p in ports]
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p} check" for i, p in enumerate(ports))
    (work / "haproxy.cfg").write_text(
        HAPROXY_CFG.format(port=front, servers=servers, retries=RETRIES if l7_retries else "    retries 0")
    )
    haproxy = None
    report: dict = {
        "replicas": replicas,
        "concurrency": concurrency,
        "serve_args": serve_args,
        "l7_retries": l7_retries,
    }
    try:
        for r in pool:
            r.start()
        with open(work / "haproxy.log", "w") as log:  # the child keeps its own copy of the handle
            haproxy = subprocess.Popen(
                ["haproxy", "-f", str(work / "haproxy.cfg"), "-db"], stdout=subprocess.DEVNULL, stderr=log
            )
        wait_http(f"http://127.0.0.1:{front}/v2/health/ready", 30)
        x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
        with Load(f"127.0.0.1:{front}", model, concurrency, x) as load:
            t0 = time.monotonic()
            time.sleep(baseline_s)
            t1 = time.monotonic()
            exits = []
            gap = max(0.0, rolling_s / replicas)
            for r in pool:  # one after another, as a Deployment's rolling update does
                started = time.monotonic()
                exits.append(r.stop(signal.SIGTERM))
                r.start()
                time.sleep(max(1.0, gap - (time.monotonic() - started)))  # health checks mark it up
            t2 = time.monotonic()
            killed = pool[0]
            killed.stop(signal.SIGKILL)
            time.sleep(sigkill_s)
            t3 = time.monotonic()
            killed.start()
            time.sleep(1.0)
        report["baseline"] = load.window(t0, t1)
        report["rolling"] = {**load.window(t1, t2), "exit_codes": exits}
        report["sigkill"] = load.window(t2, t3)
        report["after"] = load.window(t3, time.monotonic())
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
            report["haproxy_anomalies"] = _anomalies(work / "haproxy.log")
        for r in pool:
            if r.proc is not None and r.proc.proc.poll() is None:
                r.stop(signal.SIGTERM)
        report["replica_log"] = _replica_log(work)
        shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo", type=Path, help="a Triton model repository (capsdeploy export --format triton)")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--baseline-s", type=float, default=10)
    ap.add_argument("--rolling-s", type=float, default=30)
    ap.add_argument("--sigkill-s", type=float, default=10)
    ap.add_argument("--drain-delay", default="1", help="serve --drain-delay of each replica")
    ap.add_argument("--grace", default="20", help="serve --grace of each replica")
    ap.add_argument(
        "--no-l7-retries",
        action="store_true",
        help="HAProxy without its layer-7 retries: shows what a restart costs a balancer that has none",
    )
    ap.add_argument("--json", type=Path, help="write the report here")
    a = ap.parse_args(argv)
    if not (a.repo / "capsnet").is_dir():
        ap.error(f"{a.repo}: not a model repository with a capsnet model")
    serve_args = ["--engine", "ort", "--drain-delay", a.drain_delay, "--grace", a.grace]
    report = run(
        a.repo,
        a.replicas,
        a.concurrency,
        a.baseline_s,
        a.rolling_s,
        a.sigkill_s,
        serve_args,
        l7_retries=not a.no_l7_retries,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
