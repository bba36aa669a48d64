"""checkpoint -> the decoder alone as ONNX: masked poses [N, classes, D] -> reconstruction [N, C*H*W].

Served as its own model (``capsnet_decoder``) so any client can decode poses it changed
itself: perturb one dimension of the winning capsule and watch the digit change (the
paper's Figure 4). Always FP32: it is three small matrix products, and the point is faithful
pictures, not speed.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from ..contract import PREFIX, ModelMetadata
from ..errors import UsageError
from ..fileio import atomic_path
from ..model.capsnet import CapsNet
from ..model.checkpoint import load_run
from ..version import __version__
from .metadata import write_metadata
from .onnx_export import DEFAULT_OPSET, quiet_export

POSES_NAME = "poses"
RECONSTRUCTION_NAME = "reconstruction"


class DecoderModule(nn.Module):
    """The trained decoder on poses the caller has already masked (zeros but one capsule)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.net(poses.flatten(1))


def export_decoder(checkpoint: str | Path, output: str | Path, opset: int = DEFAULT_OPSET) -> dict:
    model, info = load_run(checkpoint)
    if not isinstance(model, CapsNet):
        raise UsageError(f"{checkpoint} is a {info.arch}: it has no decoder")
    cfg = model.config
    module = DecoderModule(model.decoder.net).eval()
    example = torch.rand(2, cfg.num_classes, cfg.digit_dim)
    dynamic = {"poses": {0: torch.export.Dim("batch", min=1, max=65536)}}
    proto = quiet_export(module, example, [POSES_NAME], [RECONSTRUCTION_NAME], dynamic, opset)
    meta = ModelMetadata.for_run(info, cfg.routing_iters, "fp32", "float32", with_decoder=True)
    write_metadata(proto, meta)
    proto.metadata_props.add(key=PREFIX + "part", value="decoder")
    proto.producer_name, proto.producer_version = "capsdeploy", __version__
    onnx.checker.check_model(proto, full_check=True)
    output = Path(output)
    with atomic_path(output) as tmp:
        onnx.save(proto, tmp)
    return {"output": str(output), "inputs": {POSES_NAME: [cfg.num_classes, cfg.digit_dim]}}
