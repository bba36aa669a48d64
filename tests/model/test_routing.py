import pytest
import torch

from capsdeploy.model import dynamic_routing


def test_coupling_sums_to_one_over_parents():
    u_hat = torch.randn(4, 50, 10, 16)
    _, c = dynamic_routing(u_hat, iterations=3)
    assert c.shape == (4, 50, 10)
    assert torch.allclose(c.sum(dim=2), torch.ones(4, 50), atol=1e-6)
    # Summing over children instead would give 50/10 per parent, not 1.
    assert not torch.allclose(c.sum(dim=1), torch.ones(4, 10))


def test_one_iteration_is_uniform_coupling():
    u_hat = torch.randn(2, 30, 10, 8)
    v, c = dynamic_routing(u_hat, iterations=1)
    assert torch.allclose(c, torch.full_like(c, 0.1))
    s = u_hat.mean(dim=1) * 30 / 10  # sum over children of u_hat / 10
    n2 = (s * s).sum(-1, keepdim=True)
    assert torch.allclose(v, s * n2 / (1 + n2) / n2.sqrt(), atol=1e-6)


def test_agreement_raises_coupling_to_the_agreeing_parent():
    torch.manual_seed(1)
    u_hat = 0.1 * torch.randn(1, 40, 5, 8)
    u_hat[:, :, 2] = torch.ones(8)  # every child predicts the same pose for parent 2
    _, c = dynamic_routing(u_hat, iterations=3)
    assert torch.all(c[0, :, 2] > 0.2)  # above the uniform 1/5
    assert torch.all(c[0, :, 2] > c[0, :, [0, 1, 3, 4]].max(dim=1).values)


def test_gradients_flow_through_inner_iterations_unless_detached():
    u_hat = torch.randn(2, 20, 10, 8, requires_grad=True)
    grads = {}
    for detach in (False, True):
        u_hat.grad = None
        v, _ = dynamic_routing(u_hat, iterations=3, detach_inner=detach)
        v.norm(dim=-1).sum().backward()
        grads[detach] = u_hat.grad.clone()
    assert torch.isfinite(grads[False]).all()
    assert not torch.allclose(grads[False], grads[True])
    # With one iteration there are no inner iterations: the option changes nothing.
    g = []
    for detach in (False, True):
        u_hat.grad = None
        dynamic_routing(u_hat, 1, detach)[0].sum().backward()
        g.append(u_hat.grad.clone())
    assert torch.equal(g[0], g[1])


def test_zero_iterations_rejected():
    with pytest.raises(ValueError):
        dynamic_routing(torch.randn(1, 2, 3, 4), iterations=0)


def _textbook_routing(u_hat, iterations, eps=1e-8):
    """Procedure 1 as written: broadcast-multiply, then sum (the formulation we replaced)."""
    from capsdeploy.model.squash import squash

    b = torch.zeros_like(u_hat[..., 0])
    for i in range(iterations):
        c = torch.softmax(b, dim=2)
        v = squash((c.unsqueeze(-1) * u_hat).sum(dim=1), dim=-1, eps=eps)
        if i < iterations - 1:
            b = b + (u_hat * v.unsqueeze(1)).sum(dim=-1)
    return v, c


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_matmul_routing_equals_the_textbook_form(iterations):
    torch.manual_seed(iterations)
    u_hat = 0.05 * torch.randn(3, 1152, 10, 16, dtype=torch.float64)
    v, c = dynamic_routing(u_hat, iterations)
    v_ref, c_ref = _textbook_routing(u_hat, iterations)
    assert torch.allclose(v, v_ref, atol=1e-12) and torch.allclose(c, c_ref, atol=1e-12)
    v32, _ = dynamic_routing(u_hat.float(), iterations)
    assert (v32.double() - v_ref).abs().max() < 1e-6


def test_digitcaps_layout_matches_the_children_major_prediction():
    """DigitCaps builds the parent-major predictions directly; the same weights routed
    from the children-major u_hat give the same result."""
    from capsdeploy.model import CapsNetConfig
    from capsdeploy.model.capsnet import DigitCaps

    cfg = CapsNetConfig(conv1_channels=16, primary_caps=4, primary_dim=4, digit_dim=8)
    caps = DigitCaps(cfg)
    u = torch.randn(5, cfg.num_primary, cfg.primary_dim)
    v, c = caps(u)
    w = caps.weight.double()
    u_hat = torch.einsum("bci,cio->bco", u.double(), w).reshape(5, -1, cfg.num_classes, cfg.digit_dim)
    v_ref, c_ref = _textbook_routing(u_hat, cfg.routing_iters)
    assert (v.double() - v_ref).abs().max() < 1e-6 and (c.double() - c_ref).abs().max() < 1e-6
