"""`capsdeploy viz`: the paper's pictures from a user's run.

- ``reconstructions`` (Figure 3): inputs above their reconstructions, with label and
  prediction under each pair; misclassified digits framed in red.
- ``dimensions`` (Figure 4): for a few test digits, each of the 16 dimensions of the
  winning capsule moved by -0.25..0.25 in steps of 0.05 and decoded.

Both run on PyTorch or on the exported ONNX graphs (``--engine ort``), so a figure can
show what the deployed model computes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import load_split
from ..errors import UsageError
from ..fileio import atomic_path
from ..model.checkpoint import read_run_info
from .outputs import backend_outputs, run_backend

DELTAS = np.round(np.linspace(-0.25, 0.25, 11), 2) + 0.0  # the paper's 11 steps; +0.0: no "-0.00"


@dataclass(frozen=True)
class Figure:
    """A drawn figure: ``to_dict()`` is `viz --json` (its file, engine and what each panel shows);
    ``summary`` the line the CLI prints."""

    doc: dict
    summary: str

    @property
    def output(self) -> str:
        return self.doc["output"]

    def to_dict(self) -> dict:
        return self.doc


def _test_images(info, data_dir, split, count, download):
    dataset, split = info.test_split(split)
    data = load_split(dataset, split, data_dir, download, count)
    size = info.model.image_size
    if data.shape[-1] < size:  # a --pad or --multimnist run: single digits centred on its canvas
        from ..data.canvas import center

        data = type(data)(center(data.images, size), data.labels, data.class_names, data.name, data.split)
    return data


def _require_capsnet(checkpoint, info):
    if info.arch != "capsnet":
        raise UsageError(f"{checkpoint} is a {info.arch}: it has no capsules or decoder to draw")


def pick(predicted: np.ndarray, labels: np.ndarray, count: int, failures: bool) -> np.ndarray:
    """Indices to draw: the first ``count`` images, or the first ``count`` misclassified ones."""
    idx = np.flatnonzero(predicted != labels) if failures else np.arange(len(labels))
    return idx[:count]


def reconstructions(
    checkpoint,
    output,
    engine: str = "torch",
    model: str | None = None,
    data_dir: str | None = None,
    split: str | None = None,
    count: int = 30,
    failures: bool = False,
    columns: int = 10,
    download: bool = True,
) -> Figure:
    """Draw the grid into ``output`` (PNG); return what was drawn."""
    info = read_run_info(checkpoint)
    _require_capsnet(checkpoint, info)
    # Failures are rare: look through the whole split for them, else only at what is drawn.
    data = _test_images(info, data_dir, split, None if failures else count, download)
    with run_backend(checkpoint, engine, model, with_decoder=True) as backend:
        if "reconstruction" not in {s.name for s in backend.outputs()}:
            raise UsageError(f"{model} has no reconstruction output; export it with --with-decoder")
        out = backend_outputs(backend, data.images, desc="reconstructing")
    predicted = out["scores"].argmax(1)
    chosen = pick(predicted, data.labels, count, failures)
    names = info.class_names
    items = [
        {"index": int(i), "label": names[data.labels[i]], "predicted": names[predicted[i]],
         "correct": bool(predicted[i] == data.labels[i])}
        for i in chosen
    ]  # fmt: skip
    c, h, w = data.shape
    recon = out["reconstruction"][chosen].reshape(-1, c, h, w)
    _draw_pairs(data.images[chosen], recon, items, columns, output, engine)
    errors = sum(not it["correct"] for it in items)
    doc = {"output": str(output), "engine": engine, "split": data.split, "items": items, "errors": errors}
    return Figure(doc, f"wrote {output} ({len(items)} digits, {errors} misclassified, {engine})")


def perturbations(poses: np.ndarray, winner: int, deltas: np.ndarray = DELTAS) -> np.ndarray:
    """[classes, D] poses -> [D * len(deltas), classes, D]: only the winning capsule kept
    (the decoder's mask), with dimension d moved by each delta in turn, row-major (d, delta)."""
    k, dim = poses.shape
    masked = np.zeros_like(poses)
    masked[winner] = poses[winner]
    out = np.repeat(masked[None], dim * len(deltas), axis=0)
    for d in range(dim):
        out[d * len(deltas) : (d + 1) * len(deltas), winner, d] += deltas
    return out.astype(np.float32)


@contextlib.contextmanager
def _decoder_backend(checkpoint, engine: str, decoder_model: str | None):
    """The decoder alone: the checkpoint's in PyTorch, or ``decoder_model`` / a fresh export on ORT."""
    from ..runtime.select import make_backend

    with contextlib.ExitStack() as stack:
        if engine == "torch":
            from ..runtime.torch_backend import TorchDecoderBackend

            backend = TorchDecoderBackend(checkpoint)
        else:
            if decoder_model is None:
                from ..export.decoder_export import export_decoder

                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="capsdeploy-")))
                decoder_model = str(tmp / "decoder.onnx")
                export_decoder(checkpoint, decoder_model)
            backend = make_backend("ort", model=decoder_model)
        stack.callback(backend.close)
        yield backend


def dimensions(
    checkpoint,
    output,
    engine: str = "torch",
    model: str | None = None,
    decoder_model: str | None = None,
    data_dir: str | None = None,
    split: str | None = None,
    digits: int = 3,
    download: bool = True,
) -> Figure:
    """Figure 4 for the first ``digits`` correctly classified test digits of distinct classes."""
    info = read_run_info(checkpoint)
    _require_capsnet(checkpoint, info)
    data = _test_images(info, data_dir, split, 500, download)
    with run_backend(checkpoint, engine, model) as backend:
        out = backend_outputs(backend, data.images)
    predicted = out["scores"].argmax(1)
    chosen, seen = [], set()
    for i in np.flatnonzero(predicted == data.labels).tolist():
        if data.labels[i] not in seen:
            chosen.append(int(i))
            seen.add(data.labels[i])
        if len(chosen) == digits:
            break
    panels = []
    with _decoder_backend(checkpoint, engine, decoder_model) as decoder:
        for i in chosen:
            batch = perturbations(out["poses"][i], int(predicted[i]))
            recon = decoder.infer({"poses": batch})["reconstruction"]
            panels.append(recon.reshape(out["poses"].shape[-1], len(DELTAS), *data.shape))
    names = [info.class_names[data.labels[i]] for i in chosen]
    _draw_dimensions(panels, names, output, engine)
    shown = [{"index": int(i), "label": n} for i, n in zip(chosen, names, strict=True)]
    doc = {"output": str(output), "engine": engine, "digits": shown, "deltas": DELTAS.tolist()}
    return Figure(doc, f"wrote {output} (digits {', '.join(names)}, {engine})")


def _to_gray(img: np.ndarray) -> np.ndarray:
    """[C, H, W] -> what imshow takes: [H, W] for one channel, [H, W, C] for colour."""
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def _save(fig, output) -> None:
    import matplotlib.pyplot as plt

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _draw_pairs(images, recons, items, columns, output, engine) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(items)
    if n == 0:
        raise UsageError("nothing to draw: no image matched (with --failures: the model made no mistake)")
    columns = min(columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(1.1 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for j, it in enumerate(items):
        r, c = divmod(j, columns)
        top, bottom = axes[2 * r, c], axes[2 * r + 1, c]
        top.imshow(_to_gray(images[j]), cmap="gray", vmin=0, vmax=255)
        bottom.imshow(_to_gray(np.clip(recons[j], 0, 1)), cmap="gray", vmin=0, vmax=1)
        colour = "black" if it["correct"] else "red"
        bottom.set_title(f"{it['label']} -> {it['predicted']}", y=-0.32, fontsize=8, color=colour)
        if not it["correct"]:
            for ax in (top, bottom):
                ax.set_axis_on()
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2)
    fig.suptitle(f"input (above) and reconstruction from the winning capsule ({engine}); "
                 "label -> prediction, mistakes in red", fontsize=9)  # fmt: skip
    _save(fig, output)


def _draw_dimensions(panels, names, output, engine) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 6.4), squeeze=False)
    for ax, panel, name in zip(axes[0], panels, names, strict=True):
        dims, steps, c, h, w = panel.shape
        mosaic = panel.transpose(0, 3, 1, 4, 2).reshape(dims * h, steps * w, c)
        ax.imshow(mosaic[..., 0] if c == 1 else mosaic, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"digit {name}", fontsize=10)
        ax.set_xticks([(i + 0.5) * w for i in range(steps)], [f"{d:+.2f}" for d in DELTAS], fontsize=6,
                      rotation=90)  # fmt: skip
        ax.set_yticks([(i + 0.5) * h for i in range(dims)], [str(i) for i in range(dims)], fontsize=6)
        ax.set_xlabel("change to the dimension", fontsize=8)
        ax.set_ylabel("pose dimension of the winning capsule", fontsize=8)
    fig.suptitle(f"each row: one dimension moved from -0.25 to +0.25, decoded ({engine})", fontsize=10)
    _save(fig, output)


def multimnist(
    checkpoint,
    output,
    engine: str = "torch",
    model: str | None = None,
    decoder_model: str | None = None,
    data_dir: str | None = None,
    split: str | None = None,
    count: int = 16,
    seed: int = 0,
    download: bool = True,
) -> Figure:
    """Test pairs above the reconstructions of their two longest capsules, one colour each."""
    from ..data.multimnist import both_found
    from .multimnist import pairs_for

    info = read_run_info(checkpoint)
    _require_capsnet(checkpoint, info)
    if not info.multimnist:
        raise UsageError(f"{checkpoint} was not trained with --multimnist")
    # The pairs eval --multimnist scores (built from the whole split), the first `count` drawn.
    pairs = pairs_for(info, data_dir, split, None, seed, download)
    pairs = dataclasses.replace(pairs, **{f: getattr(pairs, f)[:count]
                                          for f in ("images", "labels", "parts", "sources", "shifts")})  # fmt: skip
    with run_backend(checkpoint, engine, model) as backend:
        out = backend_outputs(backend, pairs.images)
    top2 = np.argsort(-out["scores"], axis=1, kind="stable")[:, :2]
    with _decoder_backend(checkpoint, engine, decoder_model) as decoder:
        colours = []
        for k in range(2):
            masked = np.zeros_like(out["poses"])
            rows = np.arange(len(pairs))
            masked[rows, top2[:, k]] = out["poses"][rows, top2[:, k]]
            colours.append(decoder.infer({"poses": masked})["reconstruction"])
    right = both_found(out["scores"], pairs.labels)
    names = info.class_names
    items = [
        {"labels": [names[c] for c in pairs.labels[j]], "predicted": [names[c] for c in top2[j]],
         "correct": bool(right[j])}
        for j in range(len(pairs))
    ]  # fmt: skip
    size = pairs.images.shape[-1]
    # Red: the longest capsule's digit; green: the second's (yellow where they overlap).
    rgb = np.zeros((len(pairs), size, size, 3), np.float32)
    rgb[..., 0] = colours[0].reshape(-1, pairs.images.shape[1], size, size)[:, 0]
    rgb[..., 1] = colours[1].reshape(-1, pairs.images.shape[1], size, size)[:, 0]
    _draw_multi(pairs.images, np.clip(rgb, 0, 1), items, output, engine)
    errors = int((~right).sum())
    doc = {"output": str(output), "engine": engine, "items": items, "errors": errors}
    return Figure(doc, f"wrote {output} ({len(items)} pairs, {errors} wrong, {engine})")


def _draw_multi(images, rgb, items, output, engine, columns: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(items)
    columns = min(columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(1.3 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for j, it in enumerate(items):
        r, c = divmod(j, columns)
        axes[2 * r, c].imshow(images[j, 0], cmap="gray", vmin=0, vmax=255)
        axes[2 * r + 1, c].imshow(rgb[j])
        colour = "black" if it["correct"] else "red"
        label = f"{'+'.join(it['labels'])} -> {'+'.join(it['predicted'])}"
        axes[2 * r + 1, c].set_title(label, y=-0.3, fontsize=8, color=colour)
    fig.suptitle(f"MultiMNIST pairs and the reconstructions of the two longest capsules ({engine}): "
                 "red the first, green the second; labels -> predicted, mistakes in red", fontsize=9)  # fmt: skip
    _save(fig, output)
