from __future__ import annotations

import click

from ..data import DATASETS
from .common import data_options, handle_errors, parse_json_option


@click.command("train")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory to create.")
@click.option(
    "--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this directory."
)
@click.option(
    "--arch",
    type=click.Choice(["capsnet", "cnn-baseline"]),
    default="capsnet",
    show_default=True,
    help="capsnet: the paper's CapsNet (margin loss, routing, decoder). cnn-baseline: the paper's "
    "baseline CNN (3 conv layers; 35.4M parameters at 28x28, more on a --pad canvas; cross entropy), "
    "trained the same way to compare.",
)
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default="mnist", show_default=True)
@data_options
@click.option("--train-split", help="Split name: {split}-images-idx3-ubyte[.gz]. Default: train.")
@click.option("--test-split", help="Split evaluated after each epoch. Default: t10k.")
@click.option(
    "--epochs", type=click.IntRange(1), help="Epochs in all (default 10; with --resume: extend to N)."
)
@click.option(
    "--batch-size", type=click.IntRange(1), default=16, show_default=True, help="Per process under torchrun."
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option(
    "--lr-decay", type=float, default=0.8, show_default=True, help="Learning rate factor per epoch."
)
@click.option(
    "--ema-decay",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.999,
    show_default=True,
    help="Evaluate and deliver an exponential moving average of the weights, updated every step "
    "with this decay (warmed up over the first steps). 0: deliver the raw weights.",
)
@click.option(
    "--warmup-steps",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Raise the learning rate linearly over the first N steps. Use it with --multimnist "
    "(e.g. 300): at the full rate from step one, every capsule saturates on overlapping pairs.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--routing-iters", type=click.IntRange(1), help="CapsNet only.  [default: 3]")
@click.option(
    "--detach-inner-routing",
    is_flag=True,
    help="CapsNet only: stop gradients through inner routing iterations.",
)
@click.option(
    "--pad",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Centre every split on a canvas 2*PAD px larger and train with random shifts of up to PAD px "
    "(digits placed at random). The paper's affine-robustness protocol is --pad 6 (40x40); "
    "compare with `capsdeploy eval --affine`.",
)
@click.option(
    "--model-config",
    help="JSON object (or a path to one) overriding model hyper-parameters, "
    'e.g. \'{"conv1_channels": 64, "primary_caps": 8}\'. Input size, channels and classes come from the data.',
)
@click.option("--max-train-samples", type=click.IntRange(1), help="Use only the first N training images.")
@click.option("--max-test-samples", type=click.IntRange(1), help="Use only the first N test images.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Hold out this fraction of the training split (stratified, seeded) and deliver the epoch "
    "with the best validation accuracy. 0: no hold-out, the last epoch is delivered. "
    "The test split is only reported.",
)
@click.option(
    "--multimnist",
    is_flag=True,
    help="Train on MultiMNIST (paper, Section 6): two digits of different classes, each shifted up to "
    "4 px, overlaid on 36x36; both labels count, each digit is reconstructed from its own capsule. "
    "Pairs are drawn anew each epoch from the training split; evaluated on fixed test pairs.",
)
@click.option(
    "--pairs-per-digit",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="--multimnist: pairs per training digit per epoch (the paper: 1,000).",
)
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@handle_errors
def train_cmd(out, resume_dir, epochs, no_download, model_config, **kw):
    """Train a CapsNet (or the paper's baseline CNN); write a run directory (weights, config,
    metrics, resume state).

    \b
    Example (the 10,000 real digits in ../shared, tested on the official test set):
      capsdeploy train --dataset mnist --data-dir ../shared/data/mnist \\
          --train-split digits10k --test-split t10k --epochs 10 --out runs/mnist
    Multi-process (DDP): torchrun --nproc-per-node 2 -m capsdeploy train ...
    """
    from ..errors import UsageError
    from ..train import TrainOptions, resume_options, train

    if resume_dir:
        if out and out != resume_dir:
            raise UsageError("--resume DIR continues DIR; do not also pass a different --out")
        opts = resume_options(resume_dir, epochs)
    else:
        if not out:
            raise UsageError("--out DIR is required (or --resume DIR)")
        overrides = parse_json_option(model_config, "--model-config")
        if kw["arch"] != "capsnet":
            capsule_only = [
                f
                for f, on in [
                    ("--routing-iters", kw["routing_iters"]),
                    ("--detach-inner-routing", kw["detach_inner_routing"]),
                ]
                if on
            ]
            if capsule_only:
                raise UsageError(
                    f"{', '.join(capsule_only)}: capsule-only; {kw['arch']} has no routing "
                    "(it is trained with cross entropy, not the margin loss)"
                )
        kw["routing_iters"] = kw["routing_iters"] or 3
        opts = TrainOptions(
            out=out, epochs=epochs or 10, download=not no_download, model_overrides=overrides, **kw
        )
    result = train(opts, resume=bool(resume_dir))
    m = result.delivered
    chosen = f"val acc {m['val_acc']:.4f}, " if "val_acc" in m else ""
    click.echo(
        f"delivered epoch {m.get('epoch')} ({chosen}test acc {m.get('test_acc', float('nan')):.4f}); "
        f"run directory: {result.out}"
    )
