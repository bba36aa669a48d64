"""`capsdeploy predict`: image files -> classes and scores, through any backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.preprocess import load_image, prepare_batch
from ..errors import UsageError
from .select import make_backend, resolve_auto


@dataclass(frozen=True)
class Predictions:
    """One row per file (file, class, label, score, scores per class, reconstruction if asked):
    ``to_dict()`` is `predict --json`; ``describe()`` the lines it prints."""

    engine: str
    engine_reason: str
    predictions: list[dict]

    def to_dict(self) -> dict:
        return {"engine": self.engine, "engine_reason": self.engine_reason, "predictions": self.predictions}

    def describe(self) -> str:
        return "\n".join(f"{p['file']}: {p['label']} ({p['score']:.3f})" for p in self.predictions)


def predict_files(
    paths: list[str],
    engine: str = "auto",
    model: str | None = None,
    checkpoint: str | None = None,
    batch_size: int = 64,
    invert: bool = False,
    reconstruction_dir: str | None = None,
) -> Predictions:
    chosen, why = resolve_auto(model, checkpoint) if engine == "auto" else (engine, "requested")
    kw = {"with_decoder": True} if chosen.startswith("torch") and reconstruction_dir else {}
    backend = make_backend(chosen, model=model, checkpoint=checkpoint, **kw)
    meta = backend.metadata
    spec = backend.inputs()[0]
    if meta is None:
        raise UsageError(
            f"{model} has no capsdeploy metadata, so its preprocessing is unknown; export it with capsdeploy"
        )
    channels, size = spec.shape[1], spec.shape[2]
    pixels = np.stack([load_image(p, channels, size, invert) for p in paths])
    outputs: dict[str, list] = {}
    for i in range(0, len(paths), batch_size):
        feeds = {spec.name: prepare_batch(pixels[i : i + batch_size], meta.input_dtype, meta.normalization)}
        for k, v in backend.infer(feeds).items():
            outputs.setdefault(k, []).append(v)
    backend.close()
    out = {k: np.concatenate(v) for k, v in outputs.items()}
    names = meta.class_names
    predictions = []
    for j, path in enumerate(paths):
        scores = out["scores"][j].astype(float)
        k = int(scores.argmax())
        item = {
            "file": str(path),
            "class": k,
            "label": names[k],
            "score": float(scores[k]),
            "scores": {names[c]: float(s) for c, s in enumerate(scores)},
        }
        if reconstruction_dir and "reconstruction" in out:
            item["reconstruction"] = _save_reconstruction(
                out["reconstruction"][j], channels, size, path, reconstruction_dir
            )
        predictions.append(item)
    if reconstruction_dir and "reconstruction" not in out:
        raise UsageError("this model has no reconstruction output; export it with --with-decoder")
    return Predictions(chosen, why, predictions)


def _save_reconstruction(flat: np.ndarray, channels: int, size: int, src: str, out_dir: str) -> str:
    from PIL import Image

    from ..fileio import save_png

    img = np.clip(flat.reshape(channels, size, size) * 255, 0, 255).astype(np.uint8)
    pil = Image.fromarray(img[0] if channels == 1 else img.transpose(1, 2, 0))
    dest = Path(out_dir) / (Path(src).stem + ".recon.png")
    save_png(pil, dest)
    return str(dest)
