"""The PyTorch reference: the checkpoint in eager mode, with the ONNX graph's IO names."""

from __future__ import annotations

import numpy as np
import torch

from ..contract import INPUT_NAME, ModelMetadata
from ..errors import UsageError
from ..model.capsnet import CapsNet
from ..model.checkpoint import load_run
from ..model.config import CapsNetConfig
from .backend import Backend, TensorSpec


class TorchBackend(Backend):
    """Takes normalized float32 ``image`` [N, C, H, W], as an FP32 export does.

    ``clone()`` shares the module: forward passes in inference mode are thread-safe.
    """

    name = "torch"

    def __init__(
        self,
        checkpoint,
        device: str = "cpu",
        routing_iters: int | None = None,
        with_decoder: bool = False,
        compile: bool = False,
        autocast: str | None = None,
    ):
        self.device = torch.device(device)
        if self.device.type == "cuda":
            strict_fp32()
        self.model, self.info = load_run(checkpoint, self.device, routing_iters)
        self.with_decoder = with_decoder
        self._forward = torch.compile(self.model) if compile else self.model
        # A peer in bench: eager PyTorch under bf16 autocast, what a user would try first.
        self._autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}[autocast] if autocast else None
        cfg = self.model.config
        self._input = TensorSpec(
            INPUT_NAME, "float32", (None, cfg.in_channels, cfg.image_size, cfg.image_size)
        )
        self.metadata = ModelMetadata.for_run(self.info, cfg.routing_iters, "fp32", "float32", with_decoder)

    def inputs(self) -> list[TensorSpec]:
        return [self._input]

    def outputs(self) -> list[TensorSpec]:
        cfg = self.model.config
        if isinstance(cfg, CapsNetConfig):  # scores, poses, reconstruction
            shapes = [
                (None, cfg.num_classes),
                (None, cfg.num_classes, cfg.digit_dim),
                (None, cfg.input_numel),
            ]
        else:  # the baseline CNN: scores and logits
            shapes = [(None, cfg.num_classes), (None, cfg.num_classes)]
        n = 3 if self.with_decoder else 2
        names = self.model.output_names[:n]
        return [TensorSpec(name, "float32", s) for name, s in zip(names, shapes[:n], strict=True)]

    @property
    def math(self) -> str:
        return "BF16/FP16 autocast" if self._autocast is not None else super().math

    @property
    def compute_precision(self) -> str | None:
        if self._autocast is None:
            return None
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}[self._autocast]

    @torch.inference_mode()
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(feeds[INPUT_NAME])).to(self.device)
        if self._autocast is not None:
            with torch.autocast(self.device.type, dtype=self._autocast):
                out = self._forward(x, reconstruct=self.with_decoder)
        else:
            out = self._forward(x, reconstruct=self.with_decoder)
        names = self.model.output_names
        return {name: t.float().cpu().numpy() for name, t in zip(names, out, strict=False)}

    def close(self) -> None:
        # Drops the module for the collector; a closed backend is not used again.
        self.model = self._forward = None  # type: ignore[assignment]


def strict_fp32() -> None:
    """True FP32 on CUDA: PyTorch lets cuDNN convolutions run in TF32 by default (and matmuls
    where enabled), while this backend is the FP32 reference every engine is judged against."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


class TorchDecoderBackend(Backend):
    """The checkpoint's decoder alone: masked ``poses`` [N, classes, D] -> ``reconstruction``,
    the same contract as the exported ``capsnet_decoder`` model."""

    name = "torch"

    def __init__(self, checkpoint, device: str = "cpu"):
        self.device = torch.device(device)
        model, info = load_run(checkpoint, self.device)
        if not isinstance(model, CapsNet):
            raise UsageError(f"{checkpoint} is a {info.arch}: it has no decoder")
        self.net = model.decoder.net
        cfg = model.config
        self._input = TensorSpec("poses", "float32", (None, cfg.num_classes, cfg.digit_dim))
        self._output = TensorSpec("reconstruction", "float32", (None, cfg.input_numel))
        self.metadata = ModelMetadata.for_run(info, cfg.routing_iters, "fp32", "float32", True)

    def inputs(self) -> list[TensorSpec]:
        return [self._input]

    def outputs(self) -> list[TensorSpec]:
        return [self._output]

    @torch.inference_mode()
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(feeds["poses"])).to(self.device)
        return {"reconstruction": self.net(x.flatten(1)).float().cpu().numpy()}

    def close(self) -> None:
        self.net = None  # type: ignore[assignment]  # as TorchBackend.close: released, not used again
