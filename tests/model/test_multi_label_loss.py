"""The two-label losses of MultiMNIST (Section 6), against values computed by hand."""

import pytest
import torch

from capsdeploy.model import capsule_loss, margin_loss, reconstruction_loss


def test_margin_loss_with_two_present_classes():
    scores = torch.tensor([[0.95, 0.5, 0.05, 0.3]])
    target = torch.tensor([[0, 1]])
    # present 0: relu(0.9 - 0.95)^2 = 0;  present 1: (0.9 - 0.5)^2 = 0.16
    # absent 2: 0.5 * relu(0.05 - 0.1)^2 = 0;  absent 3: 0.5 * (0.3 - 0.1)^2 = 0.02
    assert margin_loss(scores, target).item() == pytest.approx(0.18)
    # One label is the old behaviour: class 1 then counts as absent, 0.5 * 0.4^2 = 0.08.
    assert margin_loss(scores, torch.tensor([0])).item() == pytest.approx(0.08 + 0.02)


def test_each_digit_is_scored_against_its_own_reconstruction():
    recon = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]])  # [B=1, K=2, P=4]
    parts = torch.tensor([[[[[1.0, 0.0], [0.0, 0.5]]], [[[0.0, 0.0], [0.0, 0.0]]]]])  # [1, 2, 1, 2, 2]
    # digit 0: (0.5 - 0)^2 = 0.25; digit 1: (0 - 1)^2 = 1 -> 1.25
    assert reconstruction_loss(recon, parts).item() == pytest.approx(1.25)
    scores = torch.tensor([[0.9, 0.9, 0.1, 0.1]])
    total = capsule_loss(scores, torch.tensor([[0, 1]]), recon, parts, recon_scale=0.0005)
    assert total.item() == pytest.approx(0.0005 * 1.25)


def test_capsnet_reconstructs_each_labelled_digit(tiny_cfg):
    from capsdeploy.model import CapsNet

    torch.manual_seed(0)
    model = CapsNet(tiny_cfg).eval()
    x = torch.rand(3, 1, 28, 28)
    y = torch.tensor([[1, 2], [3, 4], [5, 0]])
    _, _, recons = model(x, y, reconstruct=True)
    assert recons.shape == (3, 2, 28 * 28)
    for k in range(2):
        torch.testing.assert_close(recons[:, k], model(x, y[:, k], reconstruct=True)[2])
