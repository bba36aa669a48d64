"""`capsdeploy eval --multimnist`: the paper's MultiMNIST score (Section 6) on the user's runs.

Test pairs are built from the test split with seed 0 unless told otherwise (one pair per
digit, each with a partner of another class, both shifted up to 4 px, overlaid by max).
A pair counts as right only when its two labels are the two longest capsules (for the
CNN: the two highest scores). Paper: CapsNet 5.2% error, baseline CNN 8.1%.
"""

from __future__ import annotations

from ..data import load_split
from ..data.multimnist import CANVAS, MultiSet, both_found, make_pairs
from .outputs import backend_outputs, run_backend, runs_on_canvas

PAPER_ERROR = {"capsnet": 0.052, "cnn-baseline": 0.081}


def pairs_for(info, data_dir, split, max_samples, seed, download) -> MultiSet:
    dataset, split = info.test_split(split)
    return make_pairs(load_split(dataset, split, data_dir, download, max_samples), 1, seed)


def compare_multimnist(
    checkpoints: list[str],
    data_dir: str | None = None,
    split: str | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    engine: str = "torch",
    batch_size: int = 128,
    download: bool = True,
) -> dict:
    infos = runs_on_canvas(checkpoints, CANVAS, "MultiMNIST pairs are", "train it with --multimnist")
    pairs = pairs_for(infos[0], data_dir, split, max_samples, seed, download)
    rows = []
    for c, info in zip(checkpoints, infos, strict=True):
        with run_backend(c, engine) as backend:
            scores = backend_outputs(backend, pairs.images, batch_size, f"{c}: pairs")["scores"]
        right = both_found(scores, pairs.labels)
        top1_in = (scores.argmax(1)[:, None] == pairs.labels).any(axis=1)
        rows.append(
            {
                "checkpoint": str(c),
                "arch": info.arch,
                "engine": engine,
                "accuracy": float(right.mean()),
                "error": float(1 - right.mean()),
                "top1_is_one_of_the_two": float(top1_in.mean()),
                "paper_error": PAPER_ERROR.get(info.arch),
            }
        )
    return {"split": pairs.split, "num_pairs": len(pairs), "seed": seed, "models": rows}


def format_multimnist(report: dict) -> str:
    lines = [
        f"MultiMNIST from {report['split']}: {report['num_pairs']} pairs (seed {report['seed']}); a pair is "
        "right when both labels are the two longest capsules",
        "",
        f"{'model':<40} {'arch':<13} {'error':>7} {'paper':>7}",
    ]
    for m in report["models"]:
        paper = f"{100 * m['paper_error']:.1f}%" if m["paper_error"] is not None else "-"
        lines.append(f"{m['checkpoint']:<40} {m['arch']:<13} {100 * m['error']:>6.2f}% {paper:>7}")
    return "\n".join(lines)
