from __future__ import annotations

import click

from ..data import DATASETS
from .common import data_options, handle_errors


@click.command("eval")
@click.option("--checkpoint", required=True, type=click.Path(), help="Run directory from `capsdeploy train`.")
@click.option(
    "--dataset", type=click.Choice(sorted(DATASETS)), help="Default: the dataset the run was trained on."
)
@data_options
@click.option("--test-split", "split", help="Default: the run's test split (t10k).")
@click.option("--max-samples", type=click.IntRange(1), help="Evaluate only the first N images.")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--json", "json_dest", metavar="PATH", help="Write the report as JSON; '-' for stdout.")
@click.option(
    "--grid", "grid_path", type=click.Path(dir_okay=False), help="PNG of inputs and their reconstructions."
)
@click.option("--grid-count", type=click.IntRange(1), default=20, show_default=True)
@handle_errors
def eval_cmd(checkpoint, json_dest, no_download, **kw):
    """Accuracy, per-class accuracy and confusion matrix of a trained run."""
    from ..fileio import write_json_report
    from ..train.report import evaluate_run, format_report

    report = evaluate_run(checkpoint, download=not no_download, **kw)
    if json_dest:
        write_json_report(json_dest, report)
    if json_dest != "-":
        click.echo(format_report(report))
