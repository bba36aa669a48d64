"""Training on CUDA; skipped with the reason where no CUDA device is visible."""

import pytest
import torch

from capsdeploy.model import CapsNet
from capsdeploy.train import TrainOptions, train
from tests.helpers import TINY


@pytest.mark.gpu
def test_cuda_training_with_amp_learns_and_saves(tmp_path):
    opts = TrainOptions(
        out=str(tmp_path / "run"),
        dataset="synthetic",
        epochs=2,
        max_train_samples=2000,
        max_test_samples=500,
        device="cuda",
        amp=True,
        model_overrides=dict(TINY),
    )
    result = train(opts)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.delivered["test_acc"] > 0.3


@pytest.mark.gpu
def test_cuda_and_cpu_forward_agree():
    from capsdeploy.runtime.torch_backend import strict_fp32

    strict_fp32()  # compared against FP32 on the CPU: no TF32 convolutions
    model = CapsNet().eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        cpu = model(x)[0]
        gpu = model.cuda()(x.cuda())[0].cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)
