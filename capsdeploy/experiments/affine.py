"""`capsdeploy eval --affine`: the paper's robustness comparison (Section 5.2) on the user's runs.

Protocol: models trained with ``--pad 6`` (digits placed at random on a 40x40 canvas),
compared first on the translated test set (digits at random positions, untransformed),
where they should be matched, then on the affine set (``data/affine.py``). The paper:
CapsNet 99.23% / 79%, baseline CNN 99.22% / 66% (translated / affNIST).
"""

from __future__ import annotations

from ..data import load_split
from ..data.affine import CANVAS, AffineRanges, affine_set, translated_set
from ..errors import UsageError
from .outputs import backend_outputs, run_backend, runs_on_canvas

PAPER = {
    "capsnet": {"translated": 0.9923, "affine": 0.79},
    "cnn-baseline": {"translated": 0.9922, "affine": 0.66},
}


def compare_affine(
    checkpoints: list[str],
    data_dir: str | None = None,
    split: str | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    engine: str = "torch",
    batch_size: int = 128,
    download: bool = True,
) -> dict:
    """Accuracy of each run on the translated and the affine set built from one 28x28 split."""
    infos = runs_on_canvas(
        checkpoints, CANVAS, "the affine comparison runs on", "train with --pad 6 on 28x28 digits"
    )
    dataset, split = infos[0].test_split(split)
    source = load_split(dataset, split, data_dir, download, max_samples)
    if source.shape[1:] != (28, 28):
        raise UsageError(
            f"{dataset}/{split} images are {source.shape}; the affine sets start from 28x28 digits"
        )
    sets = {"translated": translated_set(source, seed), "affine": affine_set(source, seed)[0]}
    rows = []
    for c, info in zip(checkpoints, infos, strict=True):
        row = {"checkpoint": str(c), "arch": info.arch, "engine": engine}
        with run_backend(c, engine) as backend:
            for name, data in sets.items():
                scores = backend_outputs(backend, data.images, batch_size, f"{c}: {name}")["scores"]
                row[name] = float((scores.argmax(1) == data.labels).mean())
        row["paper"] = PAPER.get(info.arch)
        rows.append(row)
    return {
        "dataset": dataset,
        "split": split,
        "num_samples": len(source),
        "seed": seed,
        "canvas": CANVAS,
        "ranges": AffineRanges().to_dict(),
        "models": rows,
    }


def format_affine(report: dict) -> str:
    r = AffineRanges(**report["ranges"])
    lines = [
        f"{report['dataset']}/{report['split']}: {report['num_samples']} digits on a {report['canvas']}x"
        f"{report['canvas']} canvas (seed {report['seed']}); affine: rotation +-{r.max_rotation_deg:g} deg, "
        f"shear +-{r.max_shear:g}, scale {r.min_scale:g}..{r.max_scale:g}, random translation",
        "",
        f"{'model':<40} {'arch':<13} {'translated':>10} {'affine':>8}   paper (translated / affine)",
    ]
    for m in report["models"]:
        paper = m["paper"]
        ref = f"{100 * paper['translated']:.2f}% / {100 * paper['affine']:.0f}%" if paper else "-"
        lines.append(
            f"{m['checkpoint']:<40} {m['arch']:<13} {100 * m['translated']:>9.2f}% {100 * m['affine']:>7.2f}%   {ref}"
        )
    return "\n".join(lines)
