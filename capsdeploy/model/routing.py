"""Dynamic routing between capsules (Sabour et al., 2017, Procedure 1).

Plain tensor code with a fixed iteration count: no data-dependent control flow
and no in-place ops, so the loop unrolls cleanly into an ONNX graph.
"""

from __future__ import annotations

import torch

from .squash import squash


def dynamic_routing(
    u_hat: torch.Tensor,
    iterations: int,
    detach_inner: bool = False,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Route predictions ``u_hat`` [B, children, parents, D] to parents.

    Returns (v [B, parents, D], c [B, children, parents]), where c are the
    coupling coefficients of the last iteration. The softmax runs over the
    parent axis, so each child's coefficients sum to 1 over the parents.

    ``detach_inner`` stops gradients through the inner iterations' agreement
    updates; by default they flow through all iterations, as in the paper's
    official implementation.
    """
    if iterations < 1:
        raise ValueError("routing needs at least one iteration")
    # Logits start at zero; built from u_hat so the batch size stays symbolic in export.
    b = torch.zeros_like(u_hat[..., 0])
    u_inner = u_hat.detach() if detach_inner else u_hat
    for i in range(iterations):
        c = torch.softmax(b, dim=2)
        last = i == iterations - 1
        u = u_hat if last else u_inner
        s = (c.unsqueeze(-1) * u).sum(dim=1)
        v = squash(s, dim=-1, eps=eps)
        if not last:
            b = b + (u * v.unsqueeze(1)).sum(dim=-1)
    return v, c
