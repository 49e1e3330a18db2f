"""AdamP (Heo et al., 2021). The equations are those of ``reference/adamp.py``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ._base import RuleOptimizer, Tensors, add_scaled_, bias_correction, ema_, ema_sq_, reduced

__all__ = ["AdamP", "adamp"]


def _project_rows(
    theta: Tensor, g: Tensor, p: Tensor, dims: tuple[int, ...], delta: float, eps: float
) -> tuple[Tensor, Tensor]:
    """(projects?, q) for rows that span ``dims`` (the other dims index the rows), tested together:
    max_i |cos(g_i, θ_i)| < δ/√(row length). Sums over dims rather than a reshape to 2-d: on a sharded DTensor
    a flattening reshape would gather the tensor, a sum over dims is an all-reduce of partial sums."""
    t_norm = reduced(torch.linalg.vector_norm(theta, dim=dims, keepdim=True))
    g_norm = reduced(torch.linalg.vector_norm(g, dim=dims, keepdim=True))
    cos = reduced((g * theta).sum(dim=dims, keepdim=True)) / (g_norm.clamp_min(eps) * t_norm.clamp_min(eps))
    threshold = delta / math.sqrt(math.prod([theta.shape[d] for d in dims]))
    # max_i |cos_i| < threshold, as "no row reaches it" (nor is NaN): a count is 0, not an error, on a rank that
    # holds no row of a sharded tensor
    projects = reduced((~(cos.abs() < threshold)).sum()) == 0
    n = theta / (t_norm + eps)  # n_i = θ_i / (‖θ_i‖ + ε)
    return projects, p - reduced((n * p).sum(dim=dims, keepdim=True)) * n  # q_i = p_i - (n_i · p_i) n_i


def project(theta: Tensor, g: Tensor, p: Tensor, *, delta: float, wd_ratio: float, eps: float) -> tuple[Tensor, Tensor]:
    """(q, r): p projected on θ's tangent space by the first view (channels, then layer) where g ⟂ θ."""
    if theta.dim() < 2 or theta.numel() == 0:
        return p, torch.ones((), dtype=p.dtype, device=p.device)
    # rows: one per output channel (spanning dims 1..n), then one for the whole tensor (spanning all dims)
    channels, layer = tuple(range(1, theta.dim())), tuple(range(theta.dim()))
    (c_ch, q_ch), (c_ly, q_ly) = (_project_rows(theta, g, p, dims, delta, eps) for dims in (channels, layer))
    q = torch.where(c_ch, q_ch, torch.where(c_ly, q_ly, p))
    r = 1.0 - (1.0 - wd_ratio) * (c_ch | c_ly).to(theta.dtype)  # wd_ratio if projected, else 1
    return q, r


def adamp(
    params: Tensors,
    grads: Tensors,
    m: Tensors,
    v: Tensors,
    step: Tensors,
    *,
    lr: Any,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    delta: float,
    wd_ratio: float,
    nesterov: bool,
    v_max: Tensors | None = None,
) -> None:
    r"""One AdamP step over lists of tensors, in place (see :class:`AdamP` for the math)."""
    beta1, beta2 = betas
    torch._foreach_add_(step, 1)
    ema_(m, grads, beta1)  # m_t
    ema_sq_(v, grads, beta2)  # v_t
    if amsgrad:
        torch._foreach_maximum_(v_max, v)  # v^max_t
    # D_t = √v_t / √(1 - β2^t) + ε
    denom = torch._foreach_sqrt(v_max if amsgrad else v)
    torch._foreach_div_(denom, [b.sqrt() for b in bias_correction(beta2, step)])
    torch._foreach_add_(denom, eps)
    # p_t = m_t / D_t  (nesterov: (β1 m_t + (1 - β1) g_t) / D_t)
    direction = torch._foreach_add(torch._foreach_mul(m, beta1), grads, alpha=1 - beta1) if nesterov else m
    direction = torch._foreach_div(direction, denom)
    qs, rs = zip(
        *(project(th, g, p_t, delta=delta, wd_ratio=wd_ratio, eps=eps) for th, g, p_t in zip(params, grads, direction))
    )
    # θ_t = θ_{t-1} (1 - α λ r) - α / (1 - β1^t) q_t
    if weight_decay:
        torch._foreach_mul_(params, [1 - lr * weight_decay * r for r in rs])
    add_scaled_(params, list(qs), [-lr / b for b in bias_correction(beta1, step)])


class AdamP(RuleOptimizer):
    r"""AdamP, from "AdamP: slowing down the slowdown for momentum optimizers on scale-invariant weights".

    With t >= 1, :math:`m_0 = v_0 = 0`, Adam's moments on the raw gradient and
    :math:`p_t = m_t / (\sqrt{v_t / (1 - \beta_2^t)} + \epsilon)`; for a tensor with >= 2 dims, the views
    "rows = output channels" then "whole tensor" are tried, and the first where
    :math:`\max_i |\cos(g_i, \theta_{t-1,i})| < \delta / \sqrt{\text{row length}}` projects every row:

    .. math::
        n_i = \frac{\theta_{t-1,i}}{\lVert \theta_{t-1,i} \rVert + \epsilon}, \qquad
        q_i = p_i - (n_i \cdot p_i)\, n_i, \qquad r = \text{wd\_ratio}

    (otherwise q = p, r = 1), then
    :math:`\theta_t = \theta_{t-1}(1 - \alpha\lambda r) - \frac{\alpha}{1 - \beta_1^t} q_t` (decoupled decay).

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor).
        betas: (β1, β2), each in [0, 1).
        eps: ε > 0 (denominator, cosine and normalisation).
        weight_decay: λ >= 0 (decoupled, scaled by wd_ratio on projected tensors).
        amsgrad: use the running max of v_t (holocron's extension; not in the paper).
        delta: δ > 0, the cosine threshold.
        wd_ratio: r in [0, 1], the official code's weight-decay factor for projected tensors.
        nesterov: Nesterov direction, as in the official code.
        foreach: use the multi-tensor path (default: on CUDA only).
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (holocron_torch/optim/_fused; built at construction, cached);
            None/False: the default path.
    """

    rule = "adamp"
    fn = staticmethod(adamp)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        delta: float = 0.1,
        *,
        wd_ratio: float = 0.1,
        nesterov: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            delta=delta,
            wd_ratio=wd_ratio,
            nesterov=nesterov,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
