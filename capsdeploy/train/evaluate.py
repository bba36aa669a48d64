"""Accuracy, per-class accuracy and the confusion matrix of a model on an ImageSet."""

from __future__ import annotations

import numpy as np
import torch

from ..data import ImageSet
from ..data.multimnist import both_found
from ..data.preprocess import prepare_batch
from ..model.losses import margin_loss


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    data: ImageSet,  # or anything with uint8 ``images`` [N, C, H, W]
    normalization: dict,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    reconstruct: bool = False,
) -> dict[str, np.ndarray]:
    """Scores (and reconstructions) for every image, in order."""
    model.eval()
    scores, recons = [], []
    for i in range(0, len(data), batch_size):
        x = torch.from_numpy(prepare_batch(data.images[i : i + batch_size], "float32", normalization))
        x = x.to(device)
        out = model(x, reconstruct=reconstruct)
        scores.append(out[0].float().cpu())
        if reconstruct:
            recons.append(out[2].float().cpu())
    result = {"scores": torch.cat(scores).numpy()}
    if reconstruct:
        result["reconstruction"] = torch.cat(recons).numpy()
    return result


def classification_report(scores: np.ndarray, labels: np.ndarray, class_names) -> dict:
    k = len(class_names)
    pred = scores.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(axis=1)
    per_class = [
        {
            "class": class_names[i],
            "support": int(support[i]),
            "accuracy": float(confusion[i, i] / support[i]) if support[i] else None,
        }
        for i in range(k)
    ]
    loss = margin_loss(torch.from_numpy(scores), torch.from_numpy(labels)).item()
    return {
        "num_samples": int(len(labels)),
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "margin_loss": loss,
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def pair_report(scores: np.ndarray, labels: np.ndarray) -> dict:
    """MultiMNIST: a pair is right only when its two labels are the two longest capsules."""
    right = both_found(scores, labels)
    loss = margin_loss(torch.from_numpy(scores), torch.from_numpy(labels)).item()
    return {
        "num_samples": int(len(labels)),
        "accuracy": float(right.mean()) if len(labels) else 0.0,
        "margin_loss": loss,
        "per_class": [],
    }


def evaluate(model, data, normalization: dict, batch_size=256, device="cpu") -> dict:
    """``data``: an ImageSet, or a MultiSet of digit pairs (scored by ``pair_report``)."""
    scores = predict(model, data, normalization, batch_size, device)["scores"]
    if data.labels.ndim == 2:
        return {"dataset": "multimnist", "split": data.split, **pair_report(scores, data.labels)}
    return {
        "dataset": data.name,
        "split": data.split,
        **classification_report(scores, data.labels, data.class_names),
    }
