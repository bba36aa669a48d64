from __future__ import annotations

import click

from ..runtime.select import ENGINES
from .common import handle_errors


@click.command("bench")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="ort",
    show_default=True,
)
@click.option("--model", type=click.Path(dir_okay=False), help="model.onnx or model.plan.")
@click.option("--checkpoint", type=click.Path(), help="Run directory (torch engines).")
@click.option(
    "--clients",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Concurrent single-image clients.",
)
@click.option(
    "--requests",
    "requests_per_client",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Requests per client per repeat.",
)
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
@click.option("--max-batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--max-queue-delay-us", type=click.IntRange(0), default=2000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Batcher worker threads, each on its own backend.clone() (ort and torch: sharing one "
    "session/module; trt: one execution context each).",
)
@click.option("--threads", type=click.IntRange(1), help="ort: intra-op threads.")
@click.option("--json", "json_dest", metavar="PATH", help="Write the results as JSON; '-' for stdout.")
@handle_errors
def bench_cmd(engine, model, checkpoint, threads, json_dest, **kw):
    """Concurrent clients at batch 1, directly vs through the dynamic batcher (medians over repeats)."""
    from ..bench.concurrency import bench_concurrency
    from ..envinfo import environment, format_environment
    from ..fileio import write_json_report
    from ..runtime.select import make_backend, resolve_auto

    if engine == "auto":
        engine, why = resolve_auto(model, checkpoint)
        click.echo(f"engine: {engine} ({why})", err=True)
    backend_kw = {"threads": threads} if threads and engine.startswith("ort") else {}
    backend = make_backend(engine, model=model, checkpoint=checkpoint, **backend_kw)
    result = {
        "engine": engine,
        "model": model,
        "environment": environment(),
        **bench_concurrency(backend, **kw),
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
