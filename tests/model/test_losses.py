import pytest
import torch

from capsdeploy.model import capsule_loss, margin_loss, reconstruction_loss


def test_margin_loss_against_hand_computed_value():
    scores = torch.tensor([[0.95, 0.2, 0.05], [0.5, 0.3, 0.0]])
    target = torch.tensor([0, 1])
    # image 0: present max(0, .9-.95)^2 = 0; absent .5*((.2-.1)^2 + 0) = .005
    # image 1: present (.9-.3)^2 = .36;      absent .5*((.5-.1)^2 + 0) = .08
    assert margin_loss(scores, target).item() == pytest.approx((0.005 + 0.44) / 2, abs=1e-7)


def test_reconstruction_loss_is_sum_of_squares_per_image_scaled():
    recon = torch.zeros(2, 4)
    image = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]]).reshape(2, 1, 2, 2)
    assert reconstruction_loss(recon, image).item() == pytest.approx((2.0 + 0.25) / 2)
    scores = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    total = capsule_loss(scores, torch.tensor([0, 1]), recon, image)
    assert total.item() == pytest.approx(0.0005 * 1.125, rel=1e-5)


def test_capsule_loss_refuses_a_reconstruction_without_its_image():
    scores = torch.tensor([[0.9, 0.1]])
    with pytest.raises(ValueError, match="needs the image"):
        capsule_loss(scores, torch.tensor([0]), torch.zeros(1, 4))
