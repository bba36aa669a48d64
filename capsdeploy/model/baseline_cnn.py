"""The paper's baseline CNN (Sabour et al., 2017, Section 5): three 5x5 convolutions of
256, 256 and 128 channels (stride 1), two fully connected layers of 328 and 192, and
dropout before a 10-way softmax trained with cross entropy. 35.4M parameters at 28x28.

The paper gives no padding or pooling; its parameter count only comes out with 'same'
padding and no pooling (128 x 28 x 28 features into the 328-wide layer), so that is
what this is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from .config import config_from_dict


@dataclass(frozen=True)
class CNNConfig:
    in_channels: int = 1
    image_size: int = 28
    conv_channels: tuple[int, ...] = field(default=(256, 256, 128))
    kernel: int = 5
    hidden: tuple[int, ...] = field(default=(328, 192))
    dropout: float = 0.5
    num_classes: int = 10
    # No routing: kept so the run, export and bench code can report every model alike.
    routing_iters: int = 0

    def __post_init__(self):
        if self.kernel % 2 != 1:
            raise ValueError("kernel must be odd ('same' padding)")
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        object.__setattr__(self, "hidden", tuple(self.hidden))

    @property
    def input_numel(self) -> int:
        return self.in_channels * self.image_size**2

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["conv_channels"], d["hidden"] = list(self.conv_channels), list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CNNConfig:
        return config_from_dict(cls, d)


class BaselineCNN(nn.Module):
    """image -> (scores [B, classes] = softmax probabilities, logits [B, classes]).

    Same call signature as CapsNet so the training loop, evaluation and export treat both
    alike; there is no decoder, so ``reconstruct=True`` is refused.
    """

    output_names = ("scores", "logits")

    def __init__(self, cfg: CNNConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or CNNConfig()
        convs: list[nn.Module] = []
        channels = [cfg.in_channels, *cfg.conv_channels]
        for a, b in zip(channels, channels[1:], strict=False):
            convs += [nn.Conv2d(a, b, cfg.kernel, padding=cfg.kernel // 2), nn.ReLU()]
        self.features = nn.Sequential(*convs)
        widths = [channels[-1] * cfg.image_size**2, *cfg.hidden]
        fc: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths, widths[1:], strict=False):
            fc += [nn.Linear(a, b), nn.ReLU()]
        fc += [nn.Dropout(cfg.dropout), nn.Linear(widths[-1], cfg.num_classes)]
        self.classifier = nn.Sequential(*fc)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None, reconstruct: bool = False):
        if reconstruct:
            raise ValueError("the baseline CNN has no decoder; it cannot reconstruct")
        logits = self.classifier(self.features(x.to(cast(nn.Conv2d, self.features[0]).weight.dtype))).float()
        return torch.softmax(logits, dim=1), logits
