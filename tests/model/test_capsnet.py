import pytest
import torch

from capsdeploy.model import CapsNet, CapsNetConfig, count_parameters


def test_paper_parameter_counts():
    model = CapsNet()
    assert model.config.num_primary == 1152
    assert count_parameters(model, include_decoder=False) == 6_804_224
    assert count_parameters(model) == 8_215_568


def test_output_shapes_and_decoder_masking(tiny_cfg):
    model = CapsNet(tiny_cfg).eval()
    x = torch.rand(5, 1, 28, 28)
    scores, poses = model(x)
    assert scores.shape == (5, 10) and poses.shape == (5, 10, tiny_cfg.digit_dim)
    assert torch.all((scores > 0) & (scores < 1))
    assert torch.allclose(scores, poses.norm(dim=-1), atol=1e-4)
    s2, p2, recon = model(x, reconstruct=True)
    assert recon.shape == (5, 784) and torch.all((recon >= 0) & (recon <= 1))
    assert torch.equal(s2, scores)
    # Inference masks by the longest capsule: the same as passing argmax as target.
    _, _, by_target = model(x, scores.argmax(1), reconstruct=True)
    assert torch.allclose(recon, by_target)
    other = (scores.argmax(1) + 1) % 10
    assert not torch.allclose(recon, model(x, other, reconstruct=True)[2])


@pytest.mark.parametrize(
    "overrides, shape",
    [({"image_size": 36}, (2, 1, 36, 36)), ({"in_channels": 3, "num_classes": 4}, (2, 3, 28, 28))],
)
def test_variants_are_a_config(tiny_cfg, overrides, shape):
    cfg = CapsNetConfig.from_dict({**tiny_cfg.to_dict(), **overrides})
    model = CapsNet(cfg)
    scores, poses, recon = model(torch.rand(shape), reconstruct=True)
    assert scores.shape == (2, cfg.num_classes)
    assert recon.shape == (2, shape[1] * shape[2] * shape[3])
    if overrides.get("image_size") == 36:
        assert cfg.primary_grid == 10  # (36 - 8 - 9) // 2 + 1


def test_config_round_trip_and_rejects_unknown_keys(tiny_cfg):
    assert CapsNetConfig.from_dict(tiny_cfg.to_dict()) == tiny_cfg
    with pytest.raises(ValueError, match="unknown"):
        CapsNetConfig.from_dict({"routing_iterations": 3})
    with pytest.raises(ValueError, match="too small"):
        CapsNetConfig(image_size=16)


def test_no_nan_for_blank_images(tiny_cfg):
    model = CapsNet(tiny_cfg)
    x = torch.zeros(2, 1, 28, 28)
    scores, _, recon = model(x, torch.tensor([0, 1]), reconstruct=True)
    (scores.sum() + recon.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
