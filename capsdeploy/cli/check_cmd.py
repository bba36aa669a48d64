from __future__ import annotations

import click

from .common import handle_errors


@click.command("check")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--trt-version",
    default="10",
    show_default=True,
    help="TensorRT version to check against: 10 (= 10.0, the strictest), 10.12, 10.15, 11.5, ... "
    "The rules that changed between versions follow it.",
)
@click.option("--json", "json_dest", metavar="PATH", help="Write findings as JSON; '-' for stdout.")
@handle_errors
def check_cmd(model, trt_version, json_dest):
    """Check an ONNX file: onnx.checker, and TensorRT parser compatibility (no GPU needed).

    Exit 0 when TensorRT should parse it, 1 when it finds errors.
    """
    import sys

    from ..export.check import check_file
    from ..export.summary import format_summary
    from ..fileio import write_json_report

    report = check_file(model, trt_version)
    if json_dest:
        write_json_report(json_dest, report.to_dict())
    if json_dest != "-":
        click.echo(format_summary(report.summary))
        click.echo(f"capsdeploy metadata: {'yes' if report.capsdeploy_metadata else 'no'}")
        for f in report.findings:
            click.echo(f"  {f}")
        click.echo(f"TensorRT {trt_version}: " + ("compatible" if report.compatible else "NOT compatible"))
    sys.exit(0 if report.compatible else 1)
