from __future__ import annotations

import sys

import click

from ..data import DATASETS
from ..runtime.select import ENGINES
from .common import data_options, handle_errors


@click.command("validate")
@click.option("--checkpoint", required=True, type=click.Path(), help="The run the model was exported from.")
@click.option(
    "--model", type=click.Path(dir_okay=False), help="The exported model (model.onnx or model.plan)."
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES[1:]),
    default="ort",
    show_default=True,
    help="trt takes a .plan, or an .onnx it builds (cached) first.",
)
@click.option("--providers", help="ONNX Runtime providers, comma-separated (default: CPUExecutionProvider).")
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), help="Default: the run's dataset.")
@data_options
@click.option("--split", help="Default: the run's test split (t10k).")
@click.option("--num-samples", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--atol", type=float, help="Override the precision's absolute tolerance.")
@click.option("--rtol", type=float, help="Override the precision's relative tolerance.")
@click.option("--json", "json_dest", metavar="PATH", help="Write the report as JSON; '-' for stdout.")
@handle_errors
def validate_cmd(checkpoint, model, providers, no_download, json_dest, **kw):
    """Compare a backend with PyTorch on real images: errors per output, top-1, accuracy.

    Tolerances default per precision (printed with the verdict). Exit 0 on pass,
    1 on a tolerance failure, 2 on usage errors.
    """
    from ..fileio import write_json_report
    from ..runtime.validate import format_validation, validate

    prov = providers.split(",") if providers else None
    report = validate(checkpoint, model, providers=prov, download=not no_download, **kw)
    if json_dest:
        write_json_report(json_dest, report.to_dict())
    if json_dest != "-":
        click.echo(format_validation(report))
    sys.exit(0 if report else 1)
