"""`capsdeploy eval` as a library function: load a run, evaluate, optionally draw."""

from __future__ import annotations

from ..data import ImageSet, load_split
from ..data.canvas import on_canvas
from ..errors import UsageError
from ..fileio import save_png
from ..model.checkpoint import load_run
from .distributed import DistInfo, resolve_device
from .evaluate import classification_report, predict
from .grid import reconstruction_grid


def evaluate_run(
    checkpoint: str,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str | None = None,
    max_samples: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    grid_path: str | None = None,
    grid_count: int = 20,
    download: bool = True,
) -> dict:
    """Evaluate the run's model on a labelled split (by default the one it was tested on)."""
    dev = resolve_device(device, DistInfo())
    model, info = load_run(checkpoint, dev)
    run_dataset, split = info.test_split(split)
    dataset = dataset or run_dataset
    if info.multimnist:
        raise UsageError(
            f"{checkpoint} was trained on MultiMNIST pairs; score it with `capsdeploy eval --multimnist`"
        )
    data = load_split(dataset, split, data_dir, download, max_samples)
    if data.shape[1] < info.model.image_size:  # a --pad run: its digits centred on its canvas
        data = ImageSet(on_canvas(data.images, info.model.image_size), data.labels, data.class_names,
                        data.name, data.split)  # fmt: skip
    expected = (info.model.in_channels, info.model.image_size, info.model.image_size)
    if data.shape != expected:
        raise UsageError(f"{dataset}/{split} images are {data.shape}, the model expects {expected}")
    if len(data.class_names) != info.model.num_classes:
        raise UsageError(f"{dataset} has {len(data.class_names)} classes, the model {info.model.num_classes}")
    out = predict(model, data, info.normalization, batch_size, dev, reconstruct=bool(grid_path))
    report = {
        "checkpoint": str(checkpoint),
        "dataset": dataset,
        "split": split,
        "routing_iters": info.model.routing_iters,
        **classification_report(out["scores"], data.labels, info.class_names),
    }
    if grid_path:
        n = min(grid_count, len(data))
        save_png(reconstruction_grid(data.images[:n], out["reconstruction"][:n]), grid_path)
        report["grid"] = str(grid_path)
    return report


def format_report(report: dict) -> str:
    lines = [
        f"{report['dataset']}/{report['split']}: {report['num_samples']} images, "
        f"accuracy {100 * report['accuracy']:.2f}%",
        "",
        "class        support  accuracy",
    ]
    for row in report["per_class"]:
        acc = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}%"
        lines.append(f"{row['class']:<12} {row['support']:>7}  {acc:>8}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    for row in report["confusion_matrix"]:
        lines.append(" ".join(f"{v:>5}" for v in row))
    if "grid" in report:
        lines.append(f"\nreconstructions: {report['grid']}")
    return "\n".join(lines)
