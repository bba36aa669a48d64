from __future__ import annotations

import click

from ..runtime.engines import CPU_ENGINES
from .common import data_options, handle_errors


def _common(f):
    f = click.option(
        "--json", "json_dest", metavar="PATH", help="Write what was drawn as JSON; '-' for stdout."
    )(f)
    f = click.option("--test-split", "split", help="Default: the run's test split (t10k).")(f)
    f = data_options(f)
    f = click.option(
        "--model",
        type=click.Path(exists=True, dir_okay=False),
        help="--engine ort: this exported model (default: export the run to a temporary file).",
    )(f)
    f = click.option(
        "--engine",
        type=click.Choice(CPU_ENGINES),
        default="torch",
        show_default=True,
        help="Draw what PyTorch computes, or what the exported ONNX graph computes on ONNX Runtime.",
    )(f)
    f = click.option("--out", "output", required=True, type=click.Path(dir_okay=False), help="PNG to write.")(
        f
    )
    return click.option(
        "--checkpoint", required=True, type=click.Path(), help="Run directory from `capsdeploy train`."
    )(f)


def _report(json_dest, figure) -> None:
    from ..fileio import write_json_report

    if json_dest:
        write_json_report(json_dest, figure.to_dict())
    if json_dest != "-":
        click.echo(figure.summary)


_decoder_model = click.option(
    "--decoder-model",
    type=click.Path(exists=True, dir_okay=False),
    help="--engine ort: the exported decoder (capsnet_decoder's model.onnx); default: export it.",
)


@click.group("viz")
def viz_cmd():
    """The paper's pictures from your run: reconstructions (Figure 3), capsule dimensions (Figure 4)."""


@viz_cmd.command("reconstructions")
@_common
@click.option("--count", type=click.IntRange(1), default=30, show_default=True, help="Digits to draw.")
@click.option(
    "--failures", is_flag=True, help="Draw only misclassified digits (searched over the whole split)."
)
@click.option("--columns", type=click.IntRange(1), default=10, show_default=True)
@handle_errors
def reconstructions_cmd(checkpoint, json_dest, no_download, **kw):
    """Test digits above their reconstructions from the winning capsule; label -> prediction under
    each, mistakes framed in red.

    \b
    Example:
      capsdeploy viz reconstructions --checkpoint runs/mnist --data-dir ../shared/data/mnist \\
          --out recon.png
    """
    from ..experiments.viz import reconstructions

    report = reconstructions(checkpoint, download=not no_download, **kw)
    _report(json_dest, report)


@viz_cmd.command("dimensions")
@_common
@_decoder_model
@click.option(
    "--digits", type=click.IntRange(1, 10), default=3, show_default=True, help="Digits, one per class."
)
@handle_errors
def dimensions_cmd(checkpoint, json_dest, no_download, **kw):
    """Each of the 16 dimensions of the winning capsule moved by -0.25..+0.25 (steps of 0.05) and
    decoded: what each dimension of a digit capsule encodes (the paper's Figure 4).

    \b
    Example:
      capsdeploy viz dimensions --checkpoint runs/mnist --data-dir ../shared/data/mnist \\
          --engine ort --out dims.png
    """
    from ..experiments.viz import dimensions

    report = dimensions(checkpoint, download=not no_download, **kw)
    _report(json_dest, report)


@viz_cmd.command("multimnist")
@_common
@_decoder_model
@click.option("--count", type=click.IntRange(1), default=16, show_default=True, help="Pairs to draw.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the test pairs.")
@handle_errors
def multimnist_cmd(checkpoint, json_dest, no_download, **kw):
    """Overlaid test pairs and what the two longest capsules reconstruct, one colour each
    (the paper's Figure 5), for a run trained with --multimnist.
    """
    from ..experiments.viz import multimnist

    report = multimnist(checkpoint, download=not no_download, **kw)
    _report(json_dest, report)
