"""The ``capsdeploy`` command; each subcommand calls one library function."""

from __future__ import annotations

import click

from ..version import __version__
from .bench_cmd import bench_cmd
from .check_cmd import check_cmd
from .eval_cmd import eval_cmd
from .export_cmd import export_cmd
from .info_cmd import info_cmd
from .predict_cmd import predict_cmd
from .report_cmd import report_cmd
from .serve_cmd import serve_cmd
from .train_cmd import train_cmd
from .tune_cmd import tune_cmd
from .validate_cmd import validate_cmd
from .viz_cmd import viz_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="capsdeploy")
def cli():
    """capsdeploy: capsule networks from PyTorch training to production inference."""


cli.add_command(train_cmd)
cli.add_command(eval_cmd)
cli.add_command(export_cmd)
cli.add_command(check_cmd)
cli.add_command(validate_cmd)
cli.add_command(predict_cmd)
cli.add_command(serve_cmd)
cli.add_command(bench_cmd)
cli.add_command(tune_cmd)
cli.add_command(viz_cmd)
cli.add_command(report_cmd)
cli.add_command(info_cmd)


def main():
    cli()
