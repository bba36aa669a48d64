from __future__ import annotations

import click

from ..runtime.engines import CPU_ENGINES
from .common import data_options, handle_errors


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to create.")
@data_options
@click.option(
    "--engine",
    type=click.Choice(CPU_ENGINES),
    default="torch",
    show_default=True,
    help="Run the tests and pictures in PyTorch, or on the exported ONNX graphs.",
)
@click.option("--max-samples", type=click.IntRange(1), help="Test images (or pairs) per test; default: all.")
@click.option("--no-pictures", is_flag=True, help="Tables only.")
@click.option("--json", "json_dest", metavar="PATH", help="Also write the numbers as JSON; '-' for stdout.")
@handle_errors
def report_cmd(runs, out_dir, no_download, no_pictures, json_dest, **kw):
    """One Markdown page comparing candidate runs: their protocol and accuracy, the affine test for
    --pad runs, the MultiMNIST score for --multimnist runs, and the pictures, beside the paper's
    numbers.

    \b
    Example:
      capsdeploy report runs/caps40 runs/cnn40 --data-dir ../shared/data/mnist --out report/
    """
    from ..experiments.report import build_report
    from ..fileio import write_json_report

    result = build_report(list(runs), out_dir, pictures=not no_pictures, download=not no_download, **kw)
    if json_dest:
        write_json_report(json_dest, result)
    if json_dest != "-":
        click.echo(
            f"wrote {result['report']} ({len(result['runs'])} runs, {len(result['figures'])} pictures)"
        )
