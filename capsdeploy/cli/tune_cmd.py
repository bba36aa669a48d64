from __future__ import annotations

import click

from .common import handle_errors


def _csv(ctx, param, value):
    if not value:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def _ints(ctx, param, value):
    try:
        return tuple(int(v) for v in _csv(ctx, param, value))
    except ValueError:
        raise click.BadParameter("a comma-separated list of integers, e.g. 1,8,32") from None


@click.command("tune")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(),
    help="The run: the PyTorch FP32 reference and what candidates export.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    help="Tune for this exported ONNX file instead of fresh exports of the run: the candidates that "
    "run a file of its precision run it; the others are rejected as not applicable.",
)
@click.option(
    "--candidates",
    callback=_csv,
    metavar="ort-int8,ov-int8,...",
    help="Candidate labels or registry engine names (default: every CPU engine, INT8 flavour, "
    "OpenVINO precision and a two-stream variant; see docs/bench.md).",
)
@click.option(
    "--samples",
    type=click.IntRange(2000),
    default=2000,
    show_default=True,
    help="Real test digits each candidate is validated on (at least 2,000).",
)
@click.option(
    "--batch-sizes", callback=_ints, metavar="1,8,16,32,64,128", help="The sweep (default 1,8,16,32,64,128)."
)
@click.option(
    "--duration-s",
    type=click.FloatRange(0.05),
    default=1.0,
    show_default=True,
    help="Timing per (candidate, batch).",
)
@click.option("--warmup-s", type=click.FloatRange(0), default=0.3, show_default=True)
@click.option("--dataset", default=None, help="Default: the run's dataset.")
@click.option("--split", default=None, help="Default: the run's test split.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder holding the IDX files.")
@click.option(
    "--out",
    "out_path",
    default="tune.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The tune file.",
)
@click.option("--json", "json_dest", metavar="PATH", help="Also write the report as JSON; '-' for stdout.")
@handle_errors
def tune_cmd(
    checkpoint,
    model,
    candidates,
    samples,
    batch_sizes,
    duration_s,
    warmup_s,
    dataset,
    split,
    data_dir,
    out_path,
    json_dest,
):
    """Try every engine on this machine, keep those that match PyTorch, time them, pick the fastest.

    \b
    Each candidate (engine, INT8 flavour, precision hint, stream setting) is validated against
    PyTorch FP32 on real test digits with its precision's tolerances; those that pass are timed
    over a batch-size sweep. Winners: throughput (engine + best batch) and latency (batch-1 p50).
    TUNE.json names this CPU; a repository written from it is refused on another CPU.
      capsdeploy tune --checkpoint runs/mnist --data-dir ../shared/data/mnist --out tune.json
      capsdeploy export --format triton --checkpoint runs/mnist --tuned tune.json --output repo
      capsdeploy serve repo            # --engine auto: the tuned engine
    """
    from ..bench.tune import DEFAULT_BATCHES, default_candidates, parse_candidates, tune
    from ..envinfo import format_environment
    from ..fileio import write_json_report
    from ..model.checkpoint import read_run_info

    trained_dataset, trained_split = read_run_info(checkpoint).test_split()
    quiet = json_dest == "-"

    def progress(msg):
        if not quiet:
            click.echo(f"  {msg} ...", err=True)

    report = tune(
        checkpoint,
        parse_candidates(candidates) if candidates else default_candidates(),
        samples=samples,
        batch_sizes=batch_sizes or DEFAULT_BATCHES,
        dataset=dataset or trained_dataset,
        split=split or trained_split,
        data_dir=data_dir,
        warmup_s=warmup_s,
        duration_s=duration_s,
        progress=progress,
        model=model,
    )
    write_json_report(out_path, report.to_dict())
    if json_dest:
        write_json_report(json_dest, report.to_dict())
    if not quiet:
        click.echo(format_environment(report.environment) + "\n")
        click.echo(report.describe())
        click.echo(f"wrote {out_path}")
