from __future__ import annotations

import click

from .common import handle_errors


@click.command("info")
@click.option("--json", "json_dest", metavar="PATH", help="Write as JSON; '-' for stdout.")
@handle_errors
def info_cmd(json_dest):
    """Versions of capsdeploy, torch, ONNX, ONNX Runtime (and its providers), TensorRT; CUDA devices."""
    from ..envinfo import environment, format_environment
    from ..fileio import write_json_report

    env = environment()
    if json_dest:
        write_json_report(json_dest, env)
    if json_dest != "-":
        click.echo(format_environment(env))
