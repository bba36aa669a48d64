"""`capsdeploy bench`: a group of four benchmarks, each with only its own options. The library
(capsdeploy/bench/) measures and returns typed reports; this module parses, prints and writes them.
The flag form of one release ago (`capsdeploy bench --engines ...`) lives in bench_legacy.py."""

from __future__ import annotations

import click

from ..runtime.engines import NAMES, PEERS
from ..runtime.select import ENGINES
from . import bench_legacy
from .common import (
    batching_from,
    batching_options,
    comma_list,
    data_dir_option,
    handle_errors,
    json_option,
    threads_option,
    timing_options,
)

ENGINES_HELP = (
    f"Engines built from --checkpoint, named <runtime>[-<precision>] ({', '.join(NAMES)}; "
    f"peers: {', '.join(PEERS)})."
)


def _checkpoint(help: str, required: bool = False):
    return click.option("--checkpoint", type=click.Path(), required=required, help=help)


def _dataset_options(fn):
    """The images timed and scored: a dataset, where its files are, and its test split."""
    fn = click.option("--test-split", default="t10k", show_default=True, help="The split scored.")(fn)
    fn = data_dir_option(fn)
    return click.option(
        "--dataset",
        type=click.Choice(["synthetic", "mnist", "fashion-mnist"]),
        help="Images to time and score on; default: synthetic for timing, the run's dataset for accuracy.",
    )(fn)


def _table_outputs(plot: bool):
    """--csv and --markdown (and --plot) of the engine table."""

    def decorate(fn):
        if plot:
            fn = click.option(
                "--plot", "plot_dest", metavar="PNG", help="Latency and throughput against batch size."
            )(fn)
        fn = click.option("--markdown", "md_dest", metavar="PATH", help="The table as Markdown.")(fn)
        return click.option("--csv", "csv_dest", metavar="PATH", help="One CSV row per configuration.")(fn)

    return decorate


@click.group(
    "bench",
    invoke_without_command=True,
    subcommand_metavar="COMMAND [ARGS]...",
)
@bench_legacy.flag_form_options
@click.pass_context
@handle_errors
def bench_cmd(ctx, **kw):
    """Benchmarks, each printing the environment first and writing --json PATH ('-': stdout).

    \b
      capsdeploy bench engines --checkpoint runs/mnist --engines torch,ort,ort-int8 --batch-sizes 1,8,32,128
      capsdeploy bench sweep --checkpoint runs/mnist --routing-iters 1,2,3,4,5 --dataset mnist
      capsdeploy bench http --url http://127.0.0.1:8000 --concurrency 1,4,16,64
      capsdeploy bench batcher --model model.onnx --clients 32

    Fields and methods: docs/bench.md.
    """
    bench_legacy.dispatch(ctx, kw)


@bench_cmd.command("engines", short_help="Latency and throughput per engine and batch size (trtexec-style).")
@click.option(
    "--engines",
    callback=comma_list(str, "torch,ort,ort-int8"),
    metavar="torch,ort,ort-int8",
    help=ENGINES_HELP,
)
@click.option(
    "--model",
    "models",
    callback=comma_list(str, "a.onnx,ov-int8=b.onnx"),
    metavar="a.onnx,b.plan",
    help="Model files timed as given: ENGINE=PATH runs one on that engine (ov-int8=int8.onnx), "
    "a bare path on ort (trt for .plan).",
)
@_checkpoint("Run directory: torch, and what named engines export.")
@click.option(
    "--batch-sizes", callback=comma_list(int, "1,8,32,128"), metavar="1,8,32,128", help="Default 1,8,32,128."
)
@timing_options()
@click.option(
    "--instances",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Time every engine with N concurrent callers, each on its own clone (N model instances; "
    "OpenVINO streams); throughput is theirs together. The tuned engine's setting.",
)
@click.option(
    "--peers",
    is_flag=True,
    help="Also time what a user gets without capsdeploy, in the same run: " + ", ".join(PEERS)
    + " (OpenVINO with every default on the FP32 and on the INT8 file, torch.compile, bf16 autocast).",
)  # fmt: skip
@click.option(
    "--profile",
    is_flag=True,
    help="Instead of timing, where the time goes at the first batch size, per phase (conv1, primary "
    "conv, prediction MatMul, u_hat transpose, routing), from OpenVINO's PERF_COUNT and ONNX "
    "Runtime's profiler (ort and ov engines).",
)
@click.option(
    "--accuracy-samples",
    type=click.IntRange(-1),
    default=0,
    show_default=True,
    help="Also score each engine on this many test images (-1: all).",
)
@_dataset_options
@threads_option
@click.option(
    "--cuda-graphs",
    type=click.Choice(["both", "on", "off"]),
    default="both",
    show_default=True,
    help="trt engines: time them with CUDA graphs replayed, without, or both (one row each).",
)
@json_option()
@_table_outputs(plot=True)
@handle_errors
def engines_cmd(**kw):
    """trtexec-style: latency distribution and throughput per engine and batch, and the speedup
    over PyTorch eager measured in the same run.

    \b
      capsdeploy bench engines --checkpoint runs/mnist --engines torch,ort,ort-int8 --batch-sizes 1,8,32,128
      capsdeploy bench engines --checkpoint runs/mnist --engines torch,ort-int8,ov-int8 --peers
      capsdeploy bench engines --checkpoint runs/mnist --engines ov,ort-int8 --profile --batch-sizes 32
    """
    run_engines(**kw)


@bench_cmd.command("sweep", short_help="Accuracy and latency per routing iteration count.")
@_checkpoint("Run directory: each routing count is exported from it.", required=True)
@click.option(
    "--routing-iters",
    required=True,
    callback=comma_list(int, "1,2,3,4,5"),
    metavar="1,2,3,4,5",
    help="Routing iteration counts, each exported and timed.",
)
@click.option(
    "--engines",
    callback=comma_list(str, "ort,ort-int8"),
    metavar="ort,ort-int8",
    help=ENGINES_HELP + " Default: ort.",
)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="The batch timed.")
@timing_options()
@click.option(
    "--accuracy-samples",
    type=click.IntRange(-1),
    default=-1,
    show_default=True,
    help="Test images each count is scored on (-1: all).",
)
@_dataset_options
@threads_option
@json_option()
@_table_outputs(plot=False)
@handle_errors
def sweep_cmd(**kw):
    """Accuracy and latency per routing iteration count, side by side: routing is unrolled to a
    fixed count at export, so the count is a deployment knob.

    \b
      capsdeploy bench sweep --checkpoint runs/mnist --routing-iters 1,2,3,4,5 --dataset mnist \\
          --data-dir ../shared/data/mnist
    """
    run_sweep(**kw)


@bench_cmd.command("http", short_help="Load on a running V2 server over HTTP or gRPC.")
@click.option(
    "--url",
    required=True,
    help="A V2 server (capsdeploy serve, Triton): http://127.0.0.1:8000, or its gRPC endpoint "
    "grpc://127.0.0.1:8001.",
)
@click.option("--model-name", default="capsnet", show_default=True, help="The model to load.")
@click.option(
    "--concurrency",
    callback=comma_list(int, "1,4,16,64"),
    metavar="1,4,16,64",
    help="Closed loop: concurrent clients per level (default 1,4,16,64 unless --request-rate).",
)
@click.option(
    "--request-rate",
    callback=comma_list(float, "500,1000"),
    metavar="500,1000",
    help="Open loop: requests per second per level (latency from the intended send time).",
)
@click.option(
    "--poisson", is_flag=True, help="Poisson arrivals instead of a constant rate (with --request-rate)."
)
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True, help="Images per request.")
@click.option(
    "--binary/--json-tensors",
    default=True,
    show_default=True,
    help="Binary tensor data extension, or JSON tensors (HTTP; gRPC sends raw contents).",
)
@click.option(
    "--window-s", type=click.FloatRange(0.01), default=2.0, show_default=True, help="One measurement window."
)
@click.option(
    "--max-trials",
    type=click.IntRange(3),
    default=10,
    show_default=True,
    help="Windows per level before reporting the spread instead of a stable result.",
)
@json_option()
@handle_errors
def http_cmd(**kw):
    """perf_analyzer-style load on a running server, closed loop (--concurrency) or open loop
    (--request-rate), over HTTP or gRPC.

    \b
      capsdeploy bench http --url http://127.0.0.1:8000 --concurrency 1,4,16,64 --binary
      capsdeploy bench http --url grpc://127.0.0.1:8001 --concurrency 1,4,16,64
    """
    run_http(**kw)


@bench_cmd.command("batcher", short_help="Single-image clients: direct calls against the dynamic batcher.")
@click.option("--model", type=click.Path(dir_okay=False), help="The model file the clients call.")
@_checkpoint("Run directory (torch engines).")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="ort",
    show_default=True,
    help="The engine the clients call.",
)
@threads_option
@click.option("--clients", type=click.IntRange(1), default=32, show_default=True, help="Concurrent clients.")
@click.option(
    "--requests",
    "requests_per_client",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Requests per client per repeat.",
)
@click.option(
    "--repeats", type=click.IntRange(1), default=5, show_default=True, help="Runs; medians over them."
)
@batching_options("batcher: ")
@json_option()
@handle_errors
def batcher_cmd(**kw):
    """Many single-image clients calling the engine directly at batch 1, then through the dynamic
    batcher serve runs (its settings and defaults are serve's; --instances: its workers), medians
    over repeats.

    \b
      capsdeploy bench batcher --model model.onnx --clients 32 --instances 2
    """
    kw["batching"] = batching_from(kw)
    run_batcher(**kw)


# -- running and rendering: shared with the flag form -------------------------------------------


def _start(json_dest):
    """The environment, printed first unless stdout carries the JSON."""
    from ..envinfo import environment, format_environment

    env = environment()
    if json_dest != "-":
        click.echo(format_environment(env) + "\n")
    return env


def _progress(json_dest):
    def progress(what):
        if json_dest != "-":
            click.echo(f"  timing {what} ...", err=True)

    return progress


def run_engines(
    engines, models, checkpoint, batch_sizes, warmup_s, duration_s, instances, peers, profile,
    accuracy_samples, dataset, data_dir, test_split, threads, cuda_graphs, json_dest,
    csv_dest=None, md_dest=None, plot_dest=None,
):  # fmt: skip
    if profile:
        return run_profile(engines, checkpoint, batch_sizes, threads, data_dir, json_dest)
    from ..bench.engine import bench_engines, engine_choices

    env = _start(json_dest)
    report = bench_engines(
        engine_choices(engines, models, peers, cuda_graphs),
        checkpoint,
        batch_sizes or None,
        warmup_s,
        duration_s,
        threads=threads,
        dataset=dataset,
        data_dir=data_dir,
        test_split=test_split,
        accuracy_samples=accuracy_samples,
        progress=_progress(json_dest),
        instances=instances,
        env=env,
    )
    _write_table(report, json_dest, csv_dest, md_dest, plot_dest)


def run_sweep(
    checkpoint, routing_iters, engines, batch_size, warmup_s, duration_s, accuracy_samples, dataset,
    data_dir, test_split, threads, json_dest, csv_dest=None, md_dest=None, plot_dest=None,
):  # fmt: skip
    from ..bench.engine import sweep_routing

    env = _start(json_dest)
    report = sweep_routing(
        checkpoint,
        routing_iters,
        engines,
        batch_size,
        dataset=dataset,
        accuracy_samples=accuracy_samples,
        warmup_s=warmup_s,
        duration_s=duration_s,
        threads=threads,
        data_dir=data_dir,
        test_split=test_split,
        progress=_progress(json_dest),
        env=env,
    )
    _write_table(report, json_dest, csv_dest, md_dest, plot_dest)


def _write_table(report, json_dest, csv_dest, md_dest, plot_dest):
    from ..bench.engine import format_table, plot, write_csv
    from ..fileio import write_bytes_atomic, write_json_report

    rows = report.results
    if json_dest:
        write_json_report(json_dest, report.to_dict())
    if csv_dest:
        write_csv(rows, csv_dest)
    if md_dest:
        write_bytes_atomic(md_dest, (format_table(rows, markdown=True) + "\n").encode())
    if plot_dest:
        plot(rows, plot_dest)
    if json_dest != "-":
        click.echo(format_table(rows))
        for w in report.warnings:
            click.echo(f"warning: {w}", err=True)


def run_profile(engines, checkpoint, batch_sizes, threads, data_dir, json_dest):
    from ..bench.profile import format_profile, profile_engines
    from ..envinfo import format_environment
    from ..fileio import write_json_report

    batch = (batch_sizes or [32])[0]
    report = profile_engines(engines, checkpoint, batch, threads, data_dir)
    if json_dest:
        write_json_report(json_dest, report.to_dict())
    if json_dest != "-":
        click.echo(format_environment(report.environment) + "\n")
        click.echo(f"batch {report.batch}: milliseconds per inference by phase (median of 20)")
        click.echo(format_profile(report.milliseconds))


def run_http(
    url, model_name, concurrency, request_rate, poisson, batch, binary, window_s, max_trials, json_dest
):
    from ..bench.http import bench_http, format_http
    from ..fileio import write_json_report

    env = _start(json_dest)
    report = bench_http(
        url,
        model_name,
        concurrency or None,
        request_rate,
        poisson,
        batch,
        binary,
        window_s,
        max_trials,
        env=env,
    )
    if json_dest:
        write_json_report(json_dest, report.to_dict())
    if json_dest != "-":
        click.echo(format_http(report))


def run_batcher(
    model, checkpoint, engine, threads, clients, requests_per_client, repeats, batching, json_dest
):
    from ..bench.concurrency import bench_batcher, format_batcher
    from ..envinfo import format_environment
    from ..fileio import write_json_report

    report = bench_batcher(
        engine,
        model,
        checkpoint,
        batching,
        clients=clients,
        requests_per_client=requests_per_client,
        repeats=repeats,
        threads=threads,
    )
    if report.engine_reason:
        click.echo(f"engine: {report.engine} ({report.engine_reason})", err=True)
    if json_dest:
        write_json_report(json_dest, report.to_dict())
    if json_dest != "-":
        click.echo(format_environment(report.environment))
        click.echo("\n" + format_batcher(report))
