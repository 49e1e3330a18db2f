"""RaLars: RAdam's rectified direction with the LAMB trust ratio. Equations: ``reference/ralars.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ._base import (
    RuleOptimizer,
    Scalars,
    Tensors,
    adam_denom,
    addcdiv_,
    axpy_,
    bias_correction,
    ema_,
    ema_sq_,
    relu,
    sqrt,
    where,
)
from .lamb import decay_term, trust_update_

__all__ = ["RaLars", "ralars"]


def ralars(
    params: Tensors,
    grads: Tensors,
    m: Tensors,
    v: Tensors,
    step: Scalars,
    *,
    lr: Any,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    force_adaptive_momentum: bool,
    scale_clip: tuple[float, float] | None,
) -> None:
    r"""One RaLars step over lists of tensors, in place (see :class:`RaLars` for the math)."""
    beta1, beta2 = betas
    ema_(m, grads, beta1)  # m_t
    ema_sq_(v, grads, beta2)  # v_t
    bc1, bc2 = bias_correction(beta1, step), bias_correction(beta2, step)
    rho_inf = 2 / (1 - beta2) - 1
    rho = [rho_inf - 2 * t * beta2**t / b for t, b in zip(step, bc2)]  # ρ_t
    # r_t: needed only where ρ_t > 4, which never happens when ρ_∞ <= 4 (β2 <= 0.6; there its formula divides by 0)
    rect = (
        [sqrt(relu((r - 4) * (r - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * r))) for r in rho]
        if rho_inf > 4
        else [0.0] * len(rho)
    )
    # a_t = r_t m̂/(√v̂+ε) if ρ_t > 4, else m̂/(√v̂+ε) (force_adaptive_momentum) or m̂; m̂/(√v̂+ε) = k m/(√v+ε√bc2)
    # with k = √bc2/bc1, so a_t = adaptive · m/(√v+ε√bc2) + plain · m with one of the two coefficients 0
    k = [sqrt(b2) / b1 for b1, b2 in zip(bc1, bc2)]
    adaptive = [where(r > 4, c * ki, ki if force_adaptive_momentum else 0.0) for r, c, ki in zip(rho, rect, k)]
    plain = [where(r > 4, 0.0, 0.0 if force_adaptive_momentum else 1 / b1) for r, b1 in zip(rho, bc1)]
    u = decay_term(params, weight_decay, step)  # u_t = a_t + λ θ_{t-1}
    addcdiv_(u, m, adam_denom(v, bc2, eps), adaptive)
    axpy_(u, m, plain)

    def wide(i: int) -> torch.Tensor:  # u_t in float64, for a tensor whose u_t overflowed its dtype (host path)
        m64, v64 = m[i].to(torch.float64), v[i].to(torch.float64)
        u64 = params[i].to(torch.float64).mul_(weight_decay).add_(m64, alpha=plain[i])
        return u64.addcdiv_(m64, v64.sqrt_().add_(eps * sqrt(bc2[i])), value=adaptive[i])

    trust_update_(params, u, step, lr=lr, scale_clip=scale_clip, wide=wide)  # θ_t = θ_{t-1} - α τ_t u_t


class RaLars(RuleOptimizer):
    r"""RaLars: RAdam ("On the variance of the adaptive learning rate and beyond") with LARS/LAMB layer-wise
    scaling. holocron's own composition; there is no paper for it (docs/errata.md).

    For each parameter tensor, with t >= 1, Adam's :math:`m_t, v_t, \hat m_t, \hat v_t` and
    :math:`\rho_\infty = 2/(1-\beta_2) - 1`, :math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`:

    .. math::
        a_t &= \begin{cases} r_t \hat m_t / (\sqrt{\hat v_t} + \epsilon) & \rho_t > 4, \quad
            r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \\
            \hat m_t / (\sqrt{\hat v_t} + \epsilon) & \text{else, if force\_adaptive\_momentum} \\
            \hat m_t & \text{otherwise} \end{cases} \\
        u_t &= a_t + \lambda \theta_{t-1}, \qquad
        \theta_t = \theta_{t-1} - \alpha \frac{\phi(\lVert \theta_{t-1} \rVert)}{\lVert u_t \rVert} u_t

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor).
        betas: (β1, β2), each in [0, 1).
        eps: ε > 0.
        weight_decay: λ >= 0, added after the adaptive direction, inside the trust ratio.
        force_adaptive_momentum: use the unrectified Adam direction while ρ_t <= 4.
        scale_clip: (lo, hi) bounds of φ on ‖θ‖; None means (0, 10).
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
    """

    rule = "ralars"
    fn = staticmethod(ralars)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        force_adaptive_momentum: bool = False,
        scale_clip: tuple[float, float] | None = None,
        *,
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
            force_adaptive_momentum=force_adaptive_momentum,
            scale_clip=scale_clip,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
