"""Load on a V2 server, perf_analyzer-style, from an asyncio client: aiohttp for
``http://`` URLs, tritonclient's gRPC aio client for ``grpc://HOST:PORT``.

Closed loop: N clients, each sending its next request when its last answer came.
Open loop: a schedule of send times (constant rate, or Poisson arrivals); latency is
measured from the **intended** send time, so a stalled server cannot hide its queueing
behind a client that stopped sending (no coordinated omission), and sends that left late
are counted. Measurement windows follow perf_analyzer's stability rule: the last three
windows within +-10% on throughput and p99, at most ``max_trials`` windows; when that never
happens the spread is reported instead of failing. The server's own split (queue, compute)
comes from the difference of ``/v2/models/{m}/stats`` over the measured windows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError

STABILITY = 0.10
LATE_S = 0.005  # a send more than 5 ms after its intended time counts as late (asyncio timers are ~1 ms)


@dataclass
class Window:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    late: int = 0
    sent: int = 0  # open loop: requests scheduled in the window

    def summary(self) -> dict:
        ok = np.asarray(self.latencies) * 1e3
        return {
            "seconds": round(self.seconds, 3),
            "completed": int(len(ok)),
            "throughput_rps": round(len(ok) / self.seconds, 2) if self.seconds else 0.0,
            "latency_ms_p99": round(float(np.percentile(ok, 99)), 3) if len(ok) else None,
        }


def stable(windows: list[dict]) -> bool:
    """perf_analyzer's rule: the last three windows within +-10% of their mean, on both."""
    if len(windows) < 3:
        return False
    last = windows[-3:]
    for key in ("throughput_rps", "latency_ms_p99"):
        vals = [w[key] for w in last]
        if any(v is None for v in vals):
            return False
        mean = sum(vals) / 3
        if mean == 0 or any(abs(v - mean) > STABILITY * mean for v in vals):
            return False
    return True


def request_body(name: str, datatype: str, data: np.ndarray, binary: bool) -> tuple[bytes, dict]:
    """One V2 infer request for ``data``: binary tensor data after a JSON header, or JSON."""
    tensor = {"name": name, "datatype": datatype, "shape": list(data.shape)}
    if binary:
        raw = np.ascontiguousarray(data).tobytes()
        doc = {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
        header = json.dumps(doc).encode()
        return header + raw, {"Inference-Header-Content-Length": str(len(header))}
    doc = {"inputs": [{**tensor, "data": data.ravel().tolist()}]}
    return json.dumps(doc).encode(), {"Content-Type": "application/json"}


def send_offsets(rate: float, seconds: float, poisson: bool, rng) -> np.ndarray:
    """When each request of an open-loop window is due, in seconds from its start: evenly
    spaced, or Poisson arrivals (exponential gaps) until the window ends."""
    if not poisson:
        return np.arange(max(1, int(round(rate * seconds)))) / rate
    times, t = [0.0], float(rng.exponential(1 / rate))
    while t < seconds:
        times.append(t)
        t += float(rng.exponential(1 / rate))
    return np.asarray(times)


def _input_data(spec: dict, cfg: dict, pixels: np.ndarray, batch: int, model: str) -> np.ndarray:
    """``batch`` images as the model's input takes them (its normalization from the config)."""
    norm = json.loads(
        cfg.get("parameters", {}).get("capsdeploy.normalization", {}).get("string_value", "{}") or "{}"
    )
    x = np.concatenate([pixels] * (-(-batch // len(pixels))))[:batch]
    if spec["datatype"] == "UINT8":
        return x.astype(np.uint8)
    if spec["datatype"] == "FP32":
        from ..data.preprocess import normalize

        return normalize(x, norm) if norm else x.astype(np.float32) / 255
    raise UsageError(f"bench --url sends UINT8 or FP32 images; {model} takes {spec['datatype']}")


class V2Target:
    """One model on one server over HTTP: its request body built once, its stats read on demand."""

    def __init__(self, session, url: str, model: str, batch: int, binary: bool):
        self.session, self.url, self.model = session, url.rstrip("/"), model
        self.batch, self.binary = batch, binary
        self.body = b""
        self.headers: dict[str, str] = {}

    async def prepare(self, pixels: np.ndarray) -> None:
        meta = await self.get_json(f"/v2/models/{self.model}")
        cfg = await self.get_json(f"/v2/models/{self.model}/config")
        spec = meta["inputs"][0]
        data = _input_data(spec, cfg, pixels, self.batch, self.model)
        self.body, self.headers = request_body(spec["name"], spec["datatype"], data, self.binary)

    async def get_json(self, path: str) -> dict:
        async with self.session.get(self.url + path) as r:
            if r.status != 200:
                raise UsageError(
                    f"{self.url}{path}: HTTP {r.status}; is the server up and the model name right?"
                )
            return await r.json(content_type=None)

    async def infer(self) -> int:
        async with self.session.post(
            f"{self.url}/v2/models/{self.model}/infer", data=self.body, headers=self.headers
        ) as r:
            await r.read()
            return r.status

    async def stats(self) -> dict:
        return (await self.get_json(f"/v2/models/{self.model}/stats"))["model_stats"][0]


class GrpcTarget:
    """One model on one server over gRPC (Triton's GRPCInferenceService, raw tensor contents).
    ``infer`` returns 200 for an answer, as the HTTP target does, else -1."""

    def __init__(self, url: str, model: str, batch: int):
        import tritonclient.grpc.aio as grpcaio

        self.grpcaio, self.model, self.batch = grpcaio, model, batch
        self.client = grpcaio.InferenceServerClient(url.removeprefix("grpc://"))
        self.inputs: list = []

    async def prepare(self, pixels: np.ndarray) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            meta = await self.client.get_model_metadata(self.model, as_json=True)
            cfg = (await self.client.get_model_config(self.model, as_json=True))["config"]
        except InferenceServerException as e:
            raise UsageError(
                f"gRPC {self.model}: {e.message()}; is the server up and the model name right?"
            ) from None
        spec = meta["inputs"][0]
        data = _input_data(spec, cfg, pixels, self.batch, self.model)
        inp = self.grpcaio.InferInput(spec["name"], list(data.shape), spec["datatype"])
        inp.set_data_from_numpy(np.ascontiguousarray(data))
        self.inputs = [inp]

    async def infer(self) -> int:
        from tritonclient.utils import InferenceServerException

        try:
            await self.client.infer(self.model, self.inputs)
            return 200
        except InferenceServerException:
            return -1

    async def stats(self) -> dict:
        # The protobuf itself, not as_json: protobuf's JSON leaves out zero-valued fields (a fresh
        # server's counts) and writes 64-bit integers as strings.
        msg = (await self.client.get_inference_statistics(self.model)).model_stats[0]
        phases = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
        return {
            "inference_count": msg.inference_count,
            "execution_count": msg.execution_count,
            "inference_stats": {
                p: {"count": getattr(msg.inference_stats, p).count, "ns": getattr(msg.inference_stats, p).ns}
                for p in phases
            },
        }

    async def close(self) -> None:
        await self.client.close()


async def _closed_window(target, clients: int, seconds: float) -> Window:
    w = Window(seconds)
    end = time.perf_counter() + seconds

    async def client():
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status = await _call(target)
            w.statuses[status] += 1
            if status == 200:
                w.latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    w.seconds = time.perf_counter() - start
    return w


async def _open_window(target, rate: float, poisson: bool, seconds: float, rng) -> Window:
    w = Window(seconds)
    offsets = send_offsets(rate, seconds, poisson, rng)
    start = time.perf_counter()
    intended = start + offsets
    w.sent = len(intended)
    tasks = []

    async def one(t_intended: float):
        now = time.perf_counter()
        if now - t_intended > LATE_S:
            w.late += 1
        status = await _call(target)
        w.statuses[status] += 1
        if status == 200:
            w.latencies.append(time.perf_counter() - t_intended)  # from the intended send time

    for t in intended:
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(t)))
    await asyncio.gather(*tasks)
    # The window lasts until its last answer: a server that cannot keep up stretches it, and
    # the throughput (completed / seconds) then falls below the offered rate.
    w.seconds = max(time.perf_counter() - start, seconds)
    return w


async def _call(target) -> int:
    """The HTTP status, or -1 when no answer came (refused, reset, timed out)."""
    import aiohttp

    try:
        return await target.infer()
    except (OSError, asyncio.TimeoutError, aiohttp.ClientError):
        return -1


def _server_split(before: dict, after: dict) -> dict:
    def d(path):
        a, b = after["inference_stats"][path], before["inference_stats"][path]
        return a["count"] - b["count"], a["ns"] - b["ns"]

    n_ok, ns_ok = d("success")
    n_q, ns_q = d("queue")
    n_c, ns_c = d("compute_infer")
    execs = after["execution_count"] - before["execution_count"]
    rows = after["inference_count"] - before["inference_count"]
    return {
        "requests": n_ok,
        "request_us_avg": round(ns_ok / n_ok / 1e3, 1) if n_ok else None,
        "queue_us_avg": round(ns_q / n_q / 1e3, 1) if n_q else None,
        "compute_infer_us_avg": round(ns_c / n_c / 1e3, 1) if n_c else None,
        "executions": execs,
        "mean_batch_rows": round(rows / execs, 2) if execs else None,
    }


def overloaded(offered_rps: float, achieved_rps: float, late: int, sent: int) -> bool:
    """An open-loop level the server could not keep up with: it completed under 90% of the
    offered rate, or more than 5% of the sends left late (the client itself fell behind)."""
    return achieved_rps < 0.9 * offered_rps or (sent > 0 and late > 0.05 * sent)


async def _level(
    target, run_window, window_s: float, max_trials: int, offered_rps: float | None = None
) -> dict:
    summaries, windows = [], []
    snapshots = [await target.stats()]  # server statistics before each window and after the last
    for _ in range(max_trials):
        w = await run_window(window_s)
        windows.append(w)
        snapshots.append(await target.stats())
        summaries.append(w.summary())
        if stable(summaries):
            break
    # Every figure below covers the same windows: the last three (or all, when fewer ran).
    n = min(3, len(windows))
    used = windows[-n:]
    lat = np.asarray([x for w in used for x in w.latencies]) * 1e3
    secs = sum(w.seconds for w in used)
    statuses: Counter[int] = sum((w.statuses for w in used), Counter())
    tp = [s["throughput_rps"] for s in summaries[-n:]]
    rps = len(lat) / secs if secs else 0.0
    late = sum(w.late for w in used)
    sent = sum(w.sent for w in used)
    is_stable = stable(summaries)
    result = {
        "stable": is_stable,
        "trials": len(windows),
        "windows_reported": n,
        "windows": summaries,
        "throughput_rps": round(rps, 2),
        "images_per_second": round(rps * target.batch, 2),
        "throughput_spread": round((max(tp) - min(tp)) / (sum(tp) / len(tp)), 3) if sum(tp) else None,
        **{
            f"latency_ms_p{p}": (round(float(np.percentile(lat, p)), 3) if len(lat) else None)
            for p in (50, 90, 95, 99)
        },
        "latency_ms_mean": round(float(lat.mean()), 3) if len(lat) else None,
        "status_codes": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(v for k, v in statuses.items() if k != 200),
        "late_sends": late,
        "server": _server_split(snapshots[-n - 1], snapshots[-1]),
    }
    if offered_rps is not None:
        result["offered_rps"] = offered_rps
        result["sent"] = sent
        result["overloaded"] = overloaded(offered_rps, rps, late, sent)
        result["stable"] = is_stable and not result["overloaded"]
    return result


async def _bench(url, model, concurrency, rates, poisson, batch, binary, window_s, max_trials, seed, pixels):
    if url.startswith("grpc://"):
        grpc_target = GrpcTarget(url, model, batch)
        try:
            return await _levels(grpc_target, concurrency, rates, poisson, window_s, max_trials, seed, pixels)
        finally:
            await grpc_target.close()
    try:
        import aiohttp
    except ImportError:
        raise UsageError("bench --url needs aiohttp: pip install aiohttp") from None
    connector = aiohttp.TCPConnector(limit=max([*concurrency, 64]) * 2)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True) as session:
        target = V2Target(session, url, model, batch, binary)
        return await _levels(target, concurrency, rates, poisson, window_s, max_trials, seed, pixels)


async def _levels(target, concurrency, rates, poisson, window_s, max_trials, seed, pixels) -> list[dict]:
    await target.prepare(pixels)
    levels = []
    for c in concurrency:
        r = await _level(target, lambda s, c=c: _closed_window(target, c, s), window_s, max_trials)
        levels.append({"loop": "closed", "concurrency": c, **r})
    rng = np.random.default_rng(seed)
    for rate in rates:
        r = await _level(
            target,
            lambda s, rate=rate: _open_window(target, rate, poisson, s, rng),
            window_s,
            max_trials,
            offered_rps=rate,
        )
        levels.append({"loop": "open", "request_rate": rate, "poisson": poisson, **r})
    return levels


DEFAULT_CONCURRENCY = (1, 4, 16, 64)


@dataclass
class HttpReport:
    """``bench http``: the load's settings and one level per concurrency or request rate (dicts
    with the JSON's keys: they are the table)."""

    protocol: str  # http or grpc
    url: str
    model: str
    batch: int
    encoding: str
    window_s: float
    max_trials: int
    levels: list[dict]
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The --json document, keys in the order the flag form always wrote them."""
        return {
            "environment": self.environment,
            "mode": "http",
            "protocol": self.protocol,
            "url": self.url,
            "model": self.model,
            "batch": self.batch,
            "encoding": self.encoding,
            "window_s": self.window_s,
            "max_trials": self.max_trials,
            "stability": f"last 3 windows within +-{STABILITY:.0%} on throughput and p99",
            "levels": self.levels,
        }


def bench_http(
    url: str,
    model: str = "capsnet",
    concurrency: list[int] | tuple | None = None,
    request_rates: list[float] | tuple = (),
    poisson: bool = False,
    batch: int = 1,
    binary: bool = True,
    window_s: float = 2.0,
    max_trials: int = 10,
    seed: int = 0,
    env: dict | None = None,
) -> HttpReport:
    """Closed-loop levels (``concurrency``; default 1,4,16,64 unless open-loop ``request_rates``
    are given), then open-loop ones. ``env``: the environment, when the caller already has it."""
    if concurrency is None:
        concurrency = () if request_rates else DEFAULT_CONCURRENCY
    if poisson and not request_rates:
        raise UsageError("--poisson shapes open-loop arrivals: give --request-rate too")
    if any(c < 1 for c in concurrency) or any(r <= 0 for r in request_rates):
        raise UsageError("--concurrency and --request-rate must be positive")
    if not url.startswith(("http://", "https://", "grpc://")):
        raise UsageError(f"--url {url!r}: give http://HOST:PORT or grpc://HOST:PORT")
    if batch < 1 or window_s <= 0 or max_trials < 3:
        raise UsageError(
            "--batch >= 1, --window-s > 0 and --max-trials >= 3 (the stability rule needs 3 windows)"
        )
    from ..data import load_split

    pixels = load_split("synthetic", "t10k", limit=64).images
    levels = asyncio.run(
        _bench(
            url,
            model,
            list(concurrency),
            list(request_rates),
            poisson,
            batch,
            binary,
            window_s,
            max_trials,
            seed,
            pixels,
        )
    )
    if env is None:
        from ..envinfo import environment

        env = environment()
    grpc = url.startswith("grpc://")
    return HttpReport(
        protocol="grpc" if grpc else "http",
        url=url,
        model=model,
        batch=batch,
        encoding="raw (gRPC)" if grpc else ("binary" if binary else "json"),
        window_s=window_s,
        max_trials=max_trials,
        levels=levels,
        environment=env,
    )


def format_http(report: HttpReport) -> str:
    head = f"{'load':<18}{'img/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>7}{'late':>6}{'stable':>8}  server queue/compute us, batch"
    lines = [head]
    for lv in report.levels:
        load = (
            f"c={lv['concurrency']}"
            if lv["loop"] == "closed"
            else f"rate={lv['request_rate']:g}/s" + (" P" if lv["poisson"] else "")
        )
        s = lv["server"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(
            f"{load:<18}{lv['images_per_second']:>9.1f}{fmt(lv['latency_ms_p50']):>9}{fmt(lv['latency_ms_p90']):>9}"
            f"{fmt(lv['latency_ms_p99']):>9}{lv['errors']:>7}{lv['late_sends']:>6}"
            f"{('yes' if lv['stable'] else 'no'):>8}  {s['queue_us_avg']}/{s['compute_infer_us_avg']}, {s['mean_batch_rows']}"
        )
    return "\n".join(lines)
