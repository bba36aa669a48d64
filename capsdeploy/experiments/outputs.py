"""A run's outputs on a batch of images, through PyTorch or the exported ONNX graph.

Any engine of the registry but the checkpoint's own (ort, ov, ov-int8, ...) exports the run (or
takes ``--model``) and runs that file, so a figure or a table shows what the deployed model
computes, not only what the checkpoint does.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.preprocess import prepare_batch
from ..errors import UsageError
from ..runtime.engines import CPU_ENGINES as ENGINES
from ..runtime.engines import engine_spec


@contextlib.contextmanager
def run_backend(checkpoint, engine: str = "torch", model: str | None = None, with_decoder: bool = False):
    """A Backend for ``checkpoint``: eager PyTorch, or an engine on ``model`` / a fresh export."""
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {ENGINES}")
    spec = engine_spec(engine)
    with contextlib.ExitStack() as stack:
        if spec.needs_checkpoint:
            if model:
                raise UsageError(
                    f"--model is for the exported engines; --engine {engine} runs the checkpoint"
                )
            backend = spec.make(checkpoint=str(checkpoint), with_decoder=with_decoder)
        else:
            if model is None:
                from ..export import ExportOptions, export_onnx

                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="capsdeploy-")))
                model = str(tmp / "model.onnx")
                export_onnx(
                    checkpoint, model, ExportOptions(with_decoder=with_decoder, **spec.export_options())
                )
            backend = spec.make(model=str(model))
        stack.callback(backend.close)
        yield backend


def runs_on_canvas(checkpoints, size: int, what: str, fix: str) -> list:
    """The RunInfo of each checkpoint, all of which must take ``size`` x ``size`` images."""
    from ..model.checkpoint import read_run_info

    infos = [read_run_info(c) for c in checkpoints]
    for c, info in zip(checkpoints, infos, strict=True):
        n = info.model.image_size
        if n != size:
            raise UsageError(f"{c} takes {n}x{n} images; {what} a {size}x{size} canvas: {fix}")
    return infos


def backend_outputs(backend, pixels: np.ndarray, batch_size: int = 128, desc: str | None = None) -> dict:
    """uint8 [N, C, H, W] -> every output of ``backend``, concatenated over batches."""
    meta = backend.metadata
    if meta is None:
        raise UsageError("the model has no capsdeploy metadata, so its preprocessing is unknown")
    spec = backend.inputs()[0]
    if tuple(pixels.shape[1:]) != tuple(spec.shape[1:]):
        raise UsageError(f"images are {tuple(pixels.shape[1:])} but the model takes {tuple(spec.shape[1:])}")
    outputs: dict[str, list] = {}
    steps = range(0, len(pixels), batch_size)
    for i in tqdm(steps, desc=desc, disable=None if desc else True, leave=False):
        feeds = {spec.name: prepare_batch(pixels[i : i + batch_size], meta.input_dtype, meta.normalization)}
        for k, v in backend.infer(feeds).items():
            outputs.setdefault(k, []).append(v.astype(np.float32, copy=False))
    return {k: np.concatenate(v) for k, v in outputs.items()}
