"""`capsdeploy report RUN_A RUN_B ...`: one Markdown page comparing candidate runs.

It gathers what each run says about itself (architecture, parameters, protocol, delivered
epoch, validation and test accuracy), runs the tests that fit the runs (the affine
comparison for 40x40 runs, the MultiMNIST score for pair-trained runs) and draws the
pictures (reconstructions, capsule dimensions, MultiMNIST pairs) next to the paper's
figures, so a user can choose a model before deploying it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..data.affine import CANVAS as AFFINE_CANVAS
from ..data.multimnist import CANVAS as MULTI_CANVAS
from ..errors import UsageError
from ..fileio import write_bytes_atomic
from ..model.checkpoint import read_run_info
from . import viz
from .affine import compare_affine
from .multimnist import compare_multimnist

PAPER_TEST_ERROR = {"capsnet": 0.0025, "cnn-baseline": 0.0039}  # MNIST, 3 routing iterations, shifted


def _param_count(run) -> int:
    from ..model.checkpoint import load_run

    model, _ = load_run(run)
    return sum(p.numel() for p in model.parameters())


def _protocol(info) -> str:
    t, d = info.raw.get("training", {}), info.dataset
    parts = [f"{d.get('name', '?')}/{d.get('train_split', '?')} ({d.get('train_samples', '?')} digits"]
    parts[-1] += f", {d.get('val_samples', 0)} held out)"
    if d.get("multimnist"):
        parts.append(f"MultiMNIST, {d['multimnist']['pairs_per_digit']} pairs/digit/epoch")
    if t.get("pad"):
        parts.append(f"--pad {t['pad']}")
    parts.append(f"{t.get('epochs', '?')} epochs, batch {t.get('batch_size', '?')}")
    return "; ".join(parts)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def build_report(
    runs: list[str],
    out_dir,
    data_dir: str | None = None,
    engine: str = "torch",
    max_samples: int | None = None,
    pictures: bool = True,
    download: bool = True,
) -> dict:
    """Write ``out_dir/report.md`` and its pictures; return the numbers as a dict."""
    if not runs:
        raise UsageError("name at least one run directory")
    infos = [read_run_info(r) for r in runs]
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UsageError(f"{out_dir} exists and is not empty; choose another --out or empty it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        result = _write(runs, infos, staging, data_dir, engine, max_samples, pictures, download)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result["report"] = str(out_dir / "report.md")
    return result


def _write(runs, infos, staging, data_dir, engine, max_samples, pictures, download) -> dict:
    rows = []
    for run, info in zip(runs, infos, strict=True):
        m = info.raw.get("metrics", {})
        rows.append({
            "run": str(run), "arch": info.arch, "parameters": _param_count(run),
            "input": f"{info.model.image_size}x{info.model.image_size}",
            "routing_iters": info.model.routing_iters or None, "protocol": _protocol(info),
            "epoch": m.get("epoch"), "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"),
            "multimnist": info.multimnist,
        })  # fmt: skip
    kw = {"data_dir": data_dir, "max_samples": max_samples, "engine": engine, "download": download}
    affine_runs = [r["run"] for r in rows if r["input"] == f"{AFFINE_CANVAS}x{AFFINE_CANVAS}"]
    multi_runs = [
        r["run"] for r in rows if r["multimnist"] and r["input"] == f"{MULTI_CANVAS}x{MULTI_CANVAS}"
    ]
    affine = compare_affine(affine_runs, **kw) if affine_runs else None
    multi = compare_multimnist(multi_runs, **kw) if multi_runs else None

    figures = []
    if pictures:
        (staging / "img").mkdir()
        for i, r in enumerate(rows):
            if r["arch"] != "capsnet":
                continue
            tag = f"run{i + 1}"
            pics: list[tuple[str, Callable[..., viz.Figure], dict[str, int]]]
            pics = [("reconstructions", viz.reconstructions, {"count": 20})]
            if r["multimnist"]:
                pics = [("multimnist pairs", viz.multimnist, {"count": 16})]
            pics.append(("capsule dimensions", viz.dimensions, {"digits": 3}))
            for title, draw, extra in pics:
                name = f"img/{tag}-{title.split()[-1]}.png"
                draw(r["run"], staging / name, engine=engine, data_dir=data_dir, download=download, **extra)
                figures.append((r["run"], title, name))
    text = _markdown(rows, affine, multi, figures, engine)
    write_bytes_atomic(staging / "report.md", text.encode())
    return {"runs": rows, "affine": affine, "multimnist": multi, "figures": [f[2] for f in figures]}


def _markdown(rows, affine, multi, figures, engine) -> str:
    lines = ["# capsdeploy report", "", f"Inference engine for the tests and pictures: `{engine}`.", ""]
    lines += ["## Runs", "", "| # | run | arch | parameters | input | routing | protocol | delivered epoch "
              "| val acc | test acc |", "|---|---|---|---:|---|---:|---|---:|---:|---:|"]  # fmt: skip
    for i, r in enumerate(rows, 1):
        lines.append(
            f"| {i} | `{r['run']}` | {r['arch']} | {r['parameters']:,} | {r['input']} | "
            f"{r['routing_iters'] or '-'} | {r['protocol']} | {r['epoch']} | {_pct(r['val_acc'])} | "
            f"{_pct(r['test_acc'])} |"
        )
    lines += ["", "Test accuracy is on the run's test split (pairs for MultiMNIST runs), never used to select "
              "the epoch. The paper (MNIST, 60,000 training digits): CapsNet 0.25% error, baseline CNN 0.39%.", ""]  # fmt: skip
    if affine:
        lines += ["## Affine robustness (paper, Section 5.2)", "",
                  f"{affine['num_samples']} digits of `{affine['dataset']}/{affine['split']}` on a "
                  f"{affine['canvas']}x{affine['canvas']} canvas, seed {affine['seed']}: the translated set (digits "
                  "at random positions) and an affNIST-style set (rotation up to 20 degrees, shear up to 0.2, scale "
                  "0.8-1.2 per axis, random translation). Compare models matched on the translated set.", "",
                  "| run | arch | translated | affine | paper (translated / affNIST) |", "|---|---|---:|---:|---|"]  # fmt: skip
        for m in affine["models"]:
            p = m["paper"]
            ref = f"{_pct(p['translated'])} / {100 * p['affine']:.0f}%" if p else "-"
            lines.append(
                f"| `{m['checkpoint']}` | {m['arch']} | {_pct(m['translated'])} | {_pct(m['affine'])} | {ref} |"
            )
        lines.append("")
    if multi:
        lines += ["## MultiMNIST (paper, Section 6)", "",
                  f"{multi['num_pairs']} test pairs from `{multi['split']}` (seed {multi['seed']}); a pair is right "
                  "only when both labels are the two longest capsules (two highest scores for the CNN).", "",
                  "| run | arch | error | paper error |", "|---|---|---:|---:|"]  # fmt: skip
        for m in multi["models"]:
            lines.append(
                f"| `{m['checkpoint']}` | {m['arch']} | {_pct(m['error'])} | {_pct(m['paper_error'])} |"
            )
        lines.append("")
    if figures:
        lines += ["## Pictures", ""]
        for run, title, name in figures:
            lines += [f"### `{run}`: {title}", "", f"![{title}]({name})", ""]
    return "\n".join(lines)
