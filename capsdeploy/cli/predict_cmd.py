from __future__ import annotations

import click

from ..runtime.select import ENGINES
from .common import handle_errors


@click.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="auto: trt where TensorRT and a GPU are present, else ort (CUDA, then CPU).",
)
@click.option("--model", type=click.Path(dir_okay=False), help="model.onnx (ort, trt) or model.plan (trt).")
@click.option("--checkpoint", type=click.Path(), help="Run directory (torch engines).")
@click.option(
    "--invert", is_flag=True, help="Invert colours: for dark ink on light paper (MNIST is white on black)."
)
@click.option(
    "--reconstruction-dir",
    type=click.Path(file_okay=False),
    help="Write each input's reconstruction as PNG (needs a --with-decoder export, or a torch engine).",
)
@click.option(
    "--json",
    "json_dest",
    metavar="PATH",
    default="-",
    show_default=True,
    help="Write predictions as JSON; '-' for stdout.",
)
@handle_errors
def predict_cmd(images, json_dest, **kw):
    """Classify PNG/JPEG/.npy images. Images of another size are letterboxed to the model's."""
    from ..fileio import write_json_report
    from ..runtime.predict import predict_files

    result = predict_files(list(images), **kw)
    click.echo(f"engine: {result.engine} ({result.engine_reason})", err=True)
    write_json_report(json_dest, result.to_dict())
    if json_dest != "-":
        click.echo(result.describe())
