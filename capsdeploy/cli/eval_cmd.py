from __future__ import annotations

import click

from ..data import DATASETS
from ..runtime.engines import CPU_ENGINES
from .common import data_options, handle_errors


@click.command("eval")
@click.option(
    "--checkpoint",
    "checkpoints",
    required=True,
    multiple=True,
    type=click.Path(),
    help="Run directory from `capsdeploy train` (repeat it with --affine to compare runs).",
)
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
@click.option(
    "--affine",
    is_flag=True,
    help="The paper's robustness test: accuracy of each run (trained with --pad 6) on a translated and "
    "an affNIST-style 40x40 set built deterministically from the test split.",
)
@click.option(
    "--multimnist",
    is_flag=True,
    help="The paper's MultiMNIST test: error of each run (trained with --multimnist) on overlaid pairs "
    "built deterministically from the test split; right only when both labels are the two longest.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="--affine/--multimnist: seed of the generated sets.",
)
@click.option(
    "--engine",
    type=click.Choice(CPU_ENGINES),
    default="torch",
    show_default=True,
    help="--affine/--multimnist: run the checkpoints in PyTorch, or export each and run ONNX Runtime.",
)
@handle_errors
def eval_cmd(checkpoints, json_dest, no_download, affine, multimnist, seed, engine, **kw):
    """Accuracy, per-class accuracy and confusion matrix of a trained run.

    \b
    Affine robustness (paper, Section 5.2), after training both models with --pad 6:
      capsdeploy eval --affine --checkpoint runs/caps40 --checkpoint runs/cnn40 \\
          --data-dir ../shared/data/mnist
    MultiMNIST (Section 6), after training both models with --multimnist:
      capsdeploy eval --multimnist --checkpoint runs/caps-multi --checkpoint runs/cnn-multi \\
          --data-dir ../shared/data/mnist
    """
    from ..errors import UsageError
    from ..fileio import write_json_report

    if affine and multimnist:
        raise UsageError("--affine and --multimnist are separate tests; run them one at a time")
    if affine or multimnist:
        from ..experiments.affine import compare_affine, format_affine
        from ..experiments.multimnist import compare_multimnist, format_multimnist

        if kw["grid_path"]:
            raise UsageError("--grid draws one run's reconstructions; use `capsdeploy viz` for these tests")
        if kw["dataset"] or kw["device"] != "auto":
            raise UsageError(
                "--affine/--multimnist build their sets from the run's own dataset and run on CPU; "
                "drop --dataset/--device (--engine picks torch or ort)"
            )
        compare, fmt = (compare_affine, format_affine) if affine else (compare_multimnist, format_multimnist)
        report = compare(
            list(checkpoints),
            data_dir=kw["data_dir"],
            split=kw["split"],
            max_samples=kw["max_samples"],
            seed=seed,
            engine=engine,
            batch_size=kw["batch_size"],
            download=not no_download,
        )
        text = fmt(report)
    else:
        from ..train.report import evaluate_run, format_report

        if len(checkpoints) != 1:
            raise UsageError(
                "several --checkpoint runs are compared with --affine or --multimnist; otherwise pass one"
            )
        if engine != "torch":
            raise UsageError(
                "--engine is for --affine and --multimnist; `capsdeploy validate` compares engines"
            )
        report = evaluate_run(checkpoints[0], download=not no_download, **kw)
        text = format_report(report)
    if json_dest:
        write_json_report(json_dest, report)
    if json_dest != "-":
        click.echo(text)
