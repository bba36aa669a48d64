"""Hyper-parameters of a capsule network, enough to rebuild the module."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CapsNetConfig:
    """Defaults are the paper's MNIST network (Sabour et al., 2017)."""

    in_channels: int = 1
    image_size: int = 28
    conv1_channels: int = 256
    conv1_kernel: int = 9
    primary_caps: int = 32  # capsule channels per grid position
    primary_dim: int = 8
    primary_kernel: int = 9
    primary_stride: int = 2
    num_classes: int = 10
    digit_dim: int = 16
    routing_iters: int = 3
    detach_inner_routing: bool = False
    decoder_hidden: tuple[int, ...] = field(default=(512, 1024))
    eps: float = 1e-8

    def __post_init__(self):
        if self.routing_iters < 1:
            raise ValueError("routing_iters must be >= 1")
        if self.primary_grid < 1:
            raise ValueError(
                f"image_size {self.image_size} is too small for kernels "
                f"{self.conv1_kernel}/{self.primary_kernel} and stride {self.primary_stride}"
            )
        # JSON round trips give lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "decoder_hidden", tuple(self.decoder_hidden))

    @property
    def primary_grid(self) -> int:
        conv1_out = self.image_size - self.conv1_kernel + 1
        return (conv1_out - self.primary_kernel) // self.primary_stride + 1

    @property
    def num_primary(self) -> int:
        return self.primary_caps * self.primary_grid**2

    @property
    def input_numel(self) -> int:
        return self.in_channels * self.image_size**2

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["decoder_hidden"] = list(self.decoder_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CapsNetConfig:
        return config_from_dict(cls, d)


def config_from_dict(cls, d: dict):
    """Any model config dataclass from its dict; unknown keys are an error, not ignored."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    return cls(**d)
