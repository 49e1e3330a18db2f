"""AdamP (Heo et al., 2021). The equations are those of ``reference/adamp.py``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ._base import RuleOptimizer, Tensors, add_scaled_, bias_correction, ema_, ema_sq_

__all__ = ["AdamP", "adamp"]


def _project_view(theta: Tensor, g: Tensor, p: Tensor, delta: float, eps: float) -> tuple[Tensor, Tensor]:
    """(projects?, q) for one 2-d view whose rows are tested: max_i |cos(g_i, θ_i)| < δ/√(row length)."""
    t_norm, g_norm = theta.norm(dim=1), g.norm(dim=1)
    cos = (g * theta).sum(dim=1) / (g_norm.clamp_min(eps) * t_norm.clamp_min(eps))
    projects = cos.abs().max() < delta / math.sqrt(theta.shape[1])
    n = theta / (t_norm.unsqueeze(1) + eps)  # n_i = θ_i / (‖θ_i‖ + ε)
    return projects, p - (n * p).sum(dim=1, keepdim=True) * n  # q_i = p_i - (n_i · p_i) n_i


def project(theta: Tensor, g: Tensor, p: Tensor, *, delta: float, wd_ratio: float, eps: float) -> tuple[Tensor, Tensor]:
    """(q, r): p projected on θ's tangent space by the first view (channels, then layer) where g ⟂ θ."""
    if theta.dim() < 2 or theta.numel() == 0:
        return p, torch.ones((), dtype=p.dtype, device=p.device)
    views = [lambda x: x.reshape(x.shape[0], -1), lambda x: x.reshape(1, -1)]
    (c_ch, q_ch), (c_ly, q_ly) = (_project_view(v(theta), v(g), v(p), delta, eps) for v in views)
    q = torch.where(c_ch, q_ch.reshape(p.shape), torch.where(c_ly, q_ly.reshape(p.shape), p))
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
        )
