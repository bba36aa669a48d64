from __future__ import annotations

import click

from ..runtime.engines import NAMES, PEERS
from ..runtime.select import ENGINES
from .common import handle_errors


def _list(cast):
    def parse(ctx, param, value):
        if not value:
            return []
        try:
            return [cast(v) for v in value.replace(",", " ").split()]
        except ValueError:
            raise click.BadParameter(f"a comma-separated list, e.g. {param.metavar}") from None

    return parse


@click.command("bench")
@click.option(
    "--engines",
    callback=_list(str),
    metavar="torch,ort,ort-int8",
    help="Engine mode: engines built from --checkpoint, named <runtime>[-<precision>] "
    f"({', '.join(NAMES)}; peers: {', '.join(PEERS)}).",
)
@click.option(
    "--instances",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Engine mode: time every engine with N concurrent callers, each on its own clone (N model "
    "instances; OpenVINO streams); throughput is theirs together. The tuned engine's setting.",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Engine mode: instead of timing, where the time goes at the first batch size, per phase "
    "(conv1, primary conv, prediction MatMul, u_hat transpose, routing), from OpenVINO's PERF_COUNT "
    "and ONNX Runtime's profiler (ort and ov engines).",
)
@click.option(
    "--peers",
    is_flag=True,
    help="Engine mode: also time what a user gets without capsdeploy, in the same run: "
    + ", ".join(PEERS)
    + " (OpenVINO with every default on the FP32 and on the INT8 file, torch.compile, bf16 autocast).",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="ort",
    show_default=True,
    help="Concurrency mode: the engine the clients call.",
)
@click.option(
    "--model",
    "models",
    callback=_list(str),
    metavar="a.onnx,b.plan",
    help="Model files: benchmarked as given (engine mode; ENGINE=PATH runs one on that engine, e.g. "
    "ov-int8=int8.onnx; else ort, or trt for .plan), or the one the clients call (concurrency mode).",
)
@click.option("--checkpoint", type=click.Path(), help="Run directory: torch, and what named engines export.")
@click.option(
    "--batch-sizes",
    callback=_list(int),
    metavar="1,8,32,128",
    help="Engine mode: batch sizes (default 1,8,32,128).",
)
@click.option("--warmup-s", type=click.FloatRange(0), default=0.2, show_default=True, help="Engine mode.")
@click.option(
    "--duration-s", type=click.FloatRange(0.01), default=3.0, show_default=True, help="Engine mode."
)
@click.option(
    "--routing-iters",
    callback=_list(int),
    metavar="1,2,3,4,5",
    help="Routing sweep: export each count and report accuracy and latency side by side "
    "(engines from --engines, default ort; batch: the first of --batch-sizes, default 32).",
)
@click.option(
    "--accuracy-samples",
    type=int,
    default=0,
    show_default=True,
    help="Engine mode: also score each engine on this many test images (-1: all). The sweep uses all.",
)
@click.option(
    "--dataset",
    type=click.Choice(["synthetic", "mnist", "fashion-mnist"]),
    help="Images to time (and score) on; default: synthetic for timing, the run's dataset for accuracy.",
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder holding the IDX files.")
@click.option("--test-split", default="t10k", show_default=True)
@click.option("--clients", type=click.IntRange(1), default=32, show_default=True, help="Concurrency mode.")
@click.option(
    "--requests",
    "requests_per_client",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Concurrency mode: requests per client per repeat.",
)
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True, help="Concurrency mode.")
@click.option(
    "--max-batch-size", type=click.IntRange(1), default=32, show_default=True, help="Concurrency mode."
)
@click.option(
    "--max-queue-delay-us", type=click.IntRange(0), default=2000, show_default=True, help="Concurrency mode."
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Concurrency mode: batcher worker threads, each on its own backend.clone().",
)
@click.option(
    "--url",
    help="HTTP mode: a V2 server (capsdeploy serve, Triton): http://127.0.0.1:8000, or its gRPC "
    "endpoint grpc://127.0.0.1:8001.",
)
@click.option("--model-name", default="capsnet", show_default=True, help="HTTP mode: the model to load.")
@click.option(
    "--concurrency",
    callback=_list(int),
    metavar="1,4,16,64",
    help="HTTP mode, closed loop: concurrent clients per level (default 1,4,16,64 unless --request-rate).",
)
@click.option(
    "--request-rate",
    callback=_list(float),
    metavar="500,1000",
    help="HTTP mode, open loop: requests per second per level (latency from the intended send time).",
)
@click.option("--poisson", is_flag=True, help="HTTP mode: Poisson arrivals instead of a constant rate.")
@click.option(
    "--batch", type=click.IntRange(1), default=1, show_default=True, help="HTTP mode: images per request."
)
@click.option(
    "--binary/--json-tensors",
    default=True,
    show_default=True,
    help="HTTP mode: binary tensor data extension, or JSON tensors.",
)
@click.option("--window-s", type=click.FloatRange(0.01), default=2.0, show_default=True, help="HTTP mode.")
@click.option(
    "--max-trials",
    type=click.IntRange(3),
    default=10,
    show_default=True,
    help="HTTP mode: windows per level before reporting the spread instead of a stable result.",
)
@click.option("--threads", type=click.IntRange(1), help="ort: intra-op threads.")
@click.option(
    "--cuda-graphs",
    type=click.Choice(["both", "on", "off"]),
    default="both",
    show_default=True,
    help="Engine mode, trt engines: time them with CUDA graphs replayed, without, or both (one row each).",
)
@click.option("--json", "json_dest", metavar="PATH", help="Write the results as JSON; '-' for stdout.")
@click.option("--csv", "csv_dest", metavar="PATH", help="Engine mode: one CSV row per configuration.")
@click.option("--markdown", "md_dest", metavar="PATH", help="Engine mode: the table as Markdown.")
@click.option("--plot", "plot_dest", metavar="PNG", help="Engine mode: latency and throughput vs batch size.")
@handle_errors
def bench_cmd(
    engines, engine, models, checkpoint, threads, json_dest, routing_iters, peers, profile, instances, **kw
):
    """Benchmarks, each printing the environment first.

    \b
    Engine mode (trtexec-style): latency distribution and throughput per engine and batch,
    and the speedup over PyTorch eager measured in the same run:
      capsdeploy bench --checkpoint runs/mnist --engines torch,ort,ort-int8 --batch-sizes 1,8,32,128
    Peers in the same run (OpenVINO defaults on our FP32 and INT8 files, torch.compile, bf16
    autocast), beside our engines:
      capsdeploy bench --checkpoint runs/mnist --engines torch,ort-int8,ov-int8 --peers
    Routing sweep: accuracy and latency per routing iteration count:
      capsdeploy bench --checkpoint runs/mnist --routing-iters 1,2,3,4,5 --dataset mnist \\
          --data-dir ../shared/data/mnist
    HTTP mode (perf_analyzer-style; closed loop, or open loop with --request-rate):
      capsdeploy bench --url http://127.0.0.1:8000 --concurrency 1,4,16,64 --binary
      capsdeploy bench --url grpc://127.0.0.1:8001 --concurrency 1,4,16,64
    Concurrency mode (the default): many single-image clients calling the backend directly
    vs through the dynamic batcher (medians over repeats):
      capsdeploy bench --model model.onnx --clients 32
    """
    engine_only = {
        "batch_sizes": "--batch-sizes",
        "csv_dest": "--csv",
        "md_dest": "--markdown",
        "plot_dest": "--plot",
    }
    if kw["url"]:
        given = {
            "--engines": engines,
            "--model": models,
            "--checkpoint": checkpoint,
            "--routing-iters": routing_iters,
            "--peers": peers,
            "--instances": instances > 1,
        }
        given.update({flag: kw[key] for key, flag in engine_only.items()})
        stray = [flag for flag, value in given.items() if value]
        if stray:
            raise click.UsageError(f"{', '.join(stray)} belong to engine mode, not to --url (HTTP mode)")
        if kw["poisson"] and not kw["request_rate"]:
            raise click.UsageError("--poisson shapes open-loop arrivals: give --request-rate too")
        return _http_mode(json_dest, kw)
    for flag in ("concurrency", "request_rate", "poisson"):
        if kw[flag]:
            raise click.UsageError(f"--{flag.replace('_', '-')} needs --url (HTTP mode)")
    if routing_iters and models:
        raise click.UsageError("--routing-iters exports each count from --checkpoint; drop --model")
    kw["instances"] = instances
    if profile:
        return _profile_mode(engines, checkpoint, threads, json_dest, kw)
    if peers:
        if routing_iters:
            raise click.UsageError("--peers belongs to engine mode (--engines), not to --routing-iters")
        # PyTorch eager is the reference every ratio is taken against: always in the run.
        engines = ["torch", *[e for e in engines if e != "torch"]]
        engines += [p for p in PEERS if p not in engines]
    if engines or routing_iters or len(models) > 1 or any(kw[key] for key in engine_only):
        return _engine_mode(engines, models, checkpoint, threads, json_dest, routing_iters, kw)
    _concurrency_mode(engine, models, checkpoint, threads, json_dest, kw)


def _engine_mode(engines, models, checkpoint, threads, json_dest, routing_iters, kw):
    from ..bench.engine import (
        bench_engines,
        format_table,
        parse_engines,
        plot,
        sweep_routing,
        with_graph_modes,
        write_csv,
    )
    from ..envinfo import environment, format_environment
    from ..fileio import write_bytes_atomic, write_json_report

    batch_sizes = kw["batch_sizes"] or ([32] if routing_iters else [1, 8, 32, 128])
    quiet = json_dest == "-"

    def progress(what):
        if not quiet:
            click.echo(f"  timing {what} ...", err=True)

    env = environment()
    if not quiet:
        click.echo(format_environment(env) + "\n")
    data = {
        "data_dir": kw["data_dir"],
        "test_split": kw["test_split"],
        "threads": threads,
        "progress": progress,
    }
    if routing_iters:
        if not checkpoint:
            raise click.UsageError("--routing-iters needs --checkpoint RUN_DIR")
        dataset = kw["dataset"] or _run_dataset(checkpoint)
        report = sweep_routing(
            checkpoint,
            routing_iters,
            engines or ["ort"],
            batch_sizes[0],
            warmup_s=kw["warmup_s"],
            duration_s=kw["duration_s"],
            dataset=dataset,
            accuracy_samples=kw["accuracy_samples"] or -1,
            **data,
        )
    else:
        dataset = kw["dataset"] or (_run_dataset(checkpoint) if kw["accuracy_samples"] else "synthetic")
        modes = {"both": (False, True), "on": (True,), "off": (False,)}[kw["cuda_graphs"]]
        report = bench_engines(
            with_graph_modes(parse_engines(engines, models), modes),
            checkpoint,
            batch_sizes,
            kw["warmup_s"],
            kw["duration_s"],
            dataset=dataset,
            accuracy_samples=kw["accuracy_samples"],
            instances=kw["instances"],
            **data,
        )
    report = {"environment": env, "dataset": dataset, **report}
    rows = report["results"]
    if json_dest:
        write_json_report(json_dest, report)
    if kw["csv_dest"]:
        write_csv(rows, kw["csv_dest"])
    if kw["md_dest"]:
        write_bytes_atomic(kw["md_dest"], (format_table(rows, markdown=True) + "\n").encode())
    if kw["plot_dest"]:
        plot(rows, kw["plot_dest"])
    if not quiet:
        click.echo(format_table(rows))
        for w in report["warnings"]:
            click.echo(f"warning: {w}", err=True)


def _profile_mode(engines, checkpoint, threads, json_dest, kw):
    import tempfile
    from pathlib import Path

    from ..bench.engine import export_for, parse_engines
    from ..bench.profile import format_profile, profile_ort, profile_ov
    from ..envinfo import environment, format_environment
    from ..fileio import write_json_report

    if not checkpoint or not engines:
        raise click.UsageError("--profile needs --checkpoint and --engines (ort and ov engines)")
    batch = (kw["batch_sizes"] or [32])[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="capsdeploy-profile-") as tmp:
        for choice in parse_engines(engines, []):
            spec = choice.spec
            if spec.runtime not in ("ort", "ov") or spec.device != "cpu":
                raise click.UsageError(
                    f"--profile reads OpenVINO's and ONNX Runtime's CPU counters; not {spec.name}"
                )
            path = export_for(choice, checkpoint, Path(tmp), kw["data_dir"])
            if spec.runtime == "ov":
                opts = {k: v for k, v in spec.options.items() if k != "cache_dir"}
                results[choice.label] = profile_ov(path, batch, threads=threads, **opts)
            else:
                results[choice.label] = profile_ort(path, batch, threads=threads)
    env = environment()
    if json_dest:
        write_json_report(json_dest, {"environment": env, "batch": batch, "milliseconds": results})
    if json_dest != "-":
        click.echo(format_environment(env) + "\n")
        click.echo(f"batch {batch}: milliseconds per inference by phase (median of 20)")
        click.echo(format_profile(results))


def _http_mode(json_dest, kw):
    from ..bench.http import bench_http, format_http
    from ..envinfo import environment, format_environment
    from ..fileio import write_json_report

    env = environment()
    if json_dest != "-":
        click.echo(format_environment(env) + "\n")
    report = bench_http(
        kw["url"],
        kw["model_name"],
        kw["concurrency"] or ([] if kw["request_rate"] else [1, 4, 16, 64]),
        kw["request_rate"],
        kw["poisson"],
        kw["batch"],
        kw["binary"],
        kw["window_s"],
        kw["max_trials"],
    )
    report = {"environment": env, **report}
    if json_dest:
        write_json_report(json_dest, report)
    if json_dest != "-":
        click.echo(format_http(report))


def _run_dataset(checkpoint) -> str:
    if not checkpoint:
        return "synthetic"
    from ..model.checkpoint import read_run_info

    return read_run_info(checkpoint).dataset_name


def _concurrency_mode(engine, models, checkpoint, threads, json_dest, kw):
    from ..bench.concurrency import bench_concurrency
    from ..envinfo import environment, format_environment
    from ..fileio import write_json_report
    from ..runtime.select import make_backend, resolve_auto

    if len(models) > 1:
        raise click.UsageError("concurrency mode takes one --model")
    model = models[0] if models else None
    if engine == "auto":
        engine, why = resolve_auto(model, checkpoint)
        click.echo(f"engine: {engine} ({why})", err=True)
    backend_kw = {"threads": threads} if threads and engine.startswith("ort") else {}
    backend = make_backend(engine, model=model, checkpoint=checkpoint, **backend_kw)
    params = {
        k: kw[k]
        for k in (
            "clients",
            "requests_per_client",
            "repeats",
            "max_batch_size",
            "max_queue_delay_us",
            "workers",
        )
    }
    result = {
        "engine": engine,
        "model": model,
        "environment": environment(),
        **bench_concurrency(backend, **params),
    }
    if json_dest:
        write_json_report(json_dest, result)
    if json_dest != "-":
        click.echo(format_environment(result["environment"]))
        click.echo(
            f"\n{result['clients']} clients x {result['requests_per_client']} requests, {result['repeats']} repeats"
        )
        for mode, m in result["modes"].items():
            click.echo(
                f"{mode:<17} median {m['median_images_per_second']:>8.1f} img/s   p50 {m['latency_ms_p50']:.2f} ms"
                f"   p99 {m['latency_ms_p99']:.2f} ms   runs {m['throughput_per_repeat']}"
            )
        b = result["modes"]["dynamic_batcher"]
        click.echo(
            f"batcher: {result['batcher_workers']} worker(s), batches per worker {b['batches_per_worker']}, "
            f"mean batch {b['mean_batch_size']}"
        )
        click.echo(f"dynamic batcher / direct batch-1: {result['batcher_speedup_median']:.2f}x")
