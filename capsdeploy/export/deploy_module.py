"""The module that is exported: preprocessing baked in, fixed output names."""

from __future__ import annotations

import torch
from torch import nn

from ..model import BaselineCNN, CapsNet


class DeployModule(nn.Module):
    """image -> (scores, poses[, reconstruction]).

    With ``uint8_input`` the graph takes raw pixels and applies the model's
    normalization itself, so clients send bytes and nothing else. With
    ``fp16_io`` the outputs are FP16 too (the input dtype follows the example).
    """

    scale: torch.Tensor  # buffers, set by register_buffer
    shift: torch.Tensor

    def __init__(
        self,
        model: CapsNet | BaselineCNN,
        normalization: dict,
        uint8_input: bool,
        with_decoder: bool,
        fp16_io: bool = False,
    ):
        super().__init__()
        self.fp16_io = fp16_io
        self.model = model
        self.uint8_input = uint8_input
        self.with_decoder = with_decoder
        c = model.config.in_channels
        mean = torch.tensor(normalization["mean"], dtype=torch.float32).reshape(1, c, 1, 1)
        std = torch.tensor(normalization["std"], dtype=torch.float32).reshape(1, c, 1, 1)
        self.trivial_norm = bool((mean == 0).all() and (std == 1).all())
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)

    def forward(self, image: torch.Tensor):
        x = image
        if self.uint8_input:
            x = x.to(torch.float32) * self.scale
            if not self.trivial_norm:
                x = x + self.shift
        outputs = self.model(x, reconstruct=self.with_decoder)
        if self.fp16_io:
            outputs = tuple(o.half() for o in outputs)
        return outputs
