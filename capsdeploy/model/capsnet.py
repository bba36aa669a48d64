"""The CapsNet of Sabour, Frosst and Hinton (NIPS 2017)."""

from __future__ import annotations

import itertools
from typing import cast

import torch
from torch import nn

from .config import CapsNetConfig
from .routing import route_parent_major
from .squash import capsule_length, squash


class PrimaryCaps(nn.Module):
    """A convolution whose channels are grouped into capsules, then squashed."""

    def __init__(self, cfg: CapsNetConfig):
        super().__init__()
        self.caps, self.dim = cfg.primary_caps, cfg.primary_dim
        self.eps = cfg.eps
        self.conv = nn.Conv2d(
            cfg.conv1_channels,
            cfg.primary_caps * cfg.primary_dim,
            cfg.primary_kernel,
            stride=cfg.primary_stride,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # [B, caps*dim, G, G]
        g = y.shape[-1]
        y = y.reshape(-1, self.caps, self.dim, g * g)
        y = y.permute(0, 1, 3, 2).reshape(-1, self.caps * g * g, self.dim)
        # Squash in FP32 even when the convolution runs in FP16 (a no-op for FP32).
        return squash(y.float(), eps=self.eps)


class DigitCaps(nn.Module):
    """One weight matrix per (child, parent) pair, then dynamic routing."""

    def __init__(self, cfg: CapsNetConfig):
        super().__init__()
        self.parents, self.dim = cfg.num_classes, cfg.digit_dim
        self.iterations = cfg.routing_iters
        self.detach_inner = cfg.detach_inner_routing
        self.eps = cfg.eps
        # Stored [children, in_dim, parents*out_dim] so the prediction is one
        # batched matmul over children (fast on CPU, a plain MatMul in ONNX).
        self.weight = nn.Parameter(
            0.1 * torch.randn(cfg.num_primary, cfg.primary_dim, cfg.num_classes * cfg.digit_dim)
        )

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # u: [B, children, in_dim] -> predictions [children, B, parents*out_dim]
        pred = torch.matmul(u.to(self.weight.dtype).transpose(0, 1), self.weight)
        # Routing (sums over 1152 children, softmax, squash) always runs in FP32, on the
        # parent-major layout [B, parents, children, out_dim] that makes it MatMuls.
        pred = pred.float().reshape(-1, u.shape[0], self.parents, self.dim).permute(1, 2, 0, 3)
        return route_parent_major(pred, self.iterations, self.detach_inner, self.eps)


class Decoder(nn.Module):
    """Three fully connected layers from the masked poses to the pixels."""

    def __init__(self, cfg: CapsNetConfig):
        super().__init__()
        widths = [cfg.num_classes * cfg.digit_dim, *cfg.decoder_hidden, cfg.input_numel]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b))
            layers.append(nn.ReLU() if i < len(widths) - 2 else nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, poses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        masked = (poses * mask.unsqueeze(-1)).flatten(1)
        return self.net(masked.to(cast(nn.Linear, self.net[0]).weight.dtype)).float()


class CapsNet(nn.Module):
    """Conv1 -> PrimaryCaps -> DigitCaps (routing) [-> Decoder].

    ``forward`` returns (scores [B, classes], poses [B, classes, D]) and, with
    ``reconstruct=True``, the reconstruction [B, C*H*W] as a third element. The
    decoder is masked by ``target`` when given (training), else by the longest
    capsule (inference). A target of [B, K] classes (K digits per image) reconstructs each
    from its own capsule: [B, K, C*H*W].
    """

    output_names = ("scores", "poses", "reconstruction")

    def __init__(self, cfg: CapsNetConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or CapsNetConfig()
        self.conv1 = nn.Conv2d(cfg.in_channels, cfg.conv1_channels, cfg.conv1_kernel)
        self.primary = PrimaryCaps(cfg)
        self.digits = DigitCaps(cfg)
        self.decoder = Decoder(cfg)

    def forward(
        self,
        x: torch.Tensor,
        target: torch.Tensor | None = None,
        reconstruct: bool = False,
    ):
        # Heavy layers run in the parameters' dtype; see PrimaryCaps/DigitCaps for FP32 islands.
        h = torch.relu(self.conv1(x.to(self.conv1.weight.dtype)))
        poses, _ = self.digits(self.primary(h))
        scores = capsule_length(poses, eps=self.config.eps)
        if not reconstruct:
            return scores, poses
        if target is None:
            target = scores.argmax(dim=1)
        if target.ndim == 2:  # several digits per image (MultiMNIST): each from its own capsule
            recons = [self._decode(poses, target[:, k]) for k in range(target.shape[1])]
            return scores, poses, torch.stack(recons, dim=1)  # [B, K, C*H*W]
        return scores, poses, self._decode(poses, target)

    def _decode(self, poses: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        mask = nn.functional.one_hot(classes, self.config.num_classes).to(poses.dtype)
        return self.decoder(poses, mask)


def count_parameters(model: nn.Module, include_decoder: bool = True) -> int:
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if include_decoder or not name.startswith("decoder.")
    )
