"""Run directories and the data tests read."""

import json
import os
from pathlib import Path

SHARED_MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
IN_CI = os.environ.get("CI") == "true"
NO_CUDA = "needs a CUDA device; none is visible (torch.cuda.is_available() is False)"

# A few capsules instead of the paper's 1152: same code paths, milliseconds per step.
TINY = {
    "conv1_channels": 16,
    "primary_caps": 4,
    "primary_dim": 4,
    "digit_dim": 8,
    "decoder_hidden": [32, 64],
}
TINY_JSON = json.dumps(TINY)


def make_run(run_dir: Path, overrides: dict | None = None, seed: int = 0, dataset: str = "synthetic") -> Path:
    """An untrained run directory (random weights): enough for parity tests."""
    import torch

    from capsdeploy.model import CapsNet, CapsNetConfig
    from capsdeploy.model.checkpoint import build_config_doc, default_normalization, save_run

    torch.manual_seed(seed)
    cfg = CapsNetConfig(**{**TINY, **(overrides or {})})
    doc = build_config_doc(
        cfg,
        [str(i) for i in range(cfg.num_classes)],
        default_normalization(cfg.in_channels),
        dataset={"name": dataset, "train_split": "train", "test_split": "t10k"},
    )
    return save_run(run_dir, CapsNet(cfg), doc)


def tiny_train_args(out, epochs=2, samples=256, batch=32):
    return [
        "train",
        "--dataset",
        "synthetic",
        "--out",
        out,
        "--epochs",
        epochs,
        "--max-train-samples",
        samples,
        "--max-test-samples",
        64,
        "--batch-size",
        batch,
        "--model-config",
        TINY_JSON,
        "--seed",
        3,
    ]


def weights(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model.safetensors"))
