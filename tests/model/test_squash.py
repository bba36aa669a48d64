import torch

from capsdeploy.model import capsule_length, squash


def test_squash_keeps_direction_and_shrinks_length_below_one():
    s = torch.randn(100, 16) * torch.logspace(-3, 3, 100)[:, None]
    v = squash(s)
    cos = torch.nn.functional.cosine_similarity(s, v, dim=-1)
    assert torch.allclose(cos, torch.ones(100), atol=1e-5)
    n = s.norm(dim=-1)
    assert torch.all(v.norm(dim=-1) < 1)
    assert torch.allclose(v.norm(dim=-1), n**2 / (1 + n**2), rtol=1e-4, atol=1e-7)


def test_squash_is_finite_at_zero_in_value_and_gradient():
    s = torch.zeros(3, 8, requires_grad=True)
    v = squash(s)
    assert torch.all(v == 0)
    v.sum().backward()
    assert torch.isfinite(s.grad).all()
    length = capsule_length(torch.zeros(2, 16, requires_grad=True))
    assert torch.isfinite(length).all()


def test_capsule_length_gradient_finite_at_zero():
    v = torch.zeros(2, 16, requires_grad=True)
    capsule_length(v).sum().backward()
    assert torch.isfinite(v.grad).all()
