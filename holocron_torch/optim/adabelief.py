"""AdaBelief (Zhuang et al., 2020). The equations are those of ``reference/adabelief.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ._base import RuleOptimizer, Scalars, Tensors, adam_step_, add_, bias_correction, ema_, ema_sq_

__all__ = ["AdaBelief", "adabelief"]


def adabelief(
    params: Tensors,
    grads: Tensors,
    m: Tensors,
    s: Tensors,
    step: Scalars,
    *,
    lr: Any,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    s_max: Tensors | None = None,
) -> None:
    r"""One AdaBelief step over lists of tensors, in place (see :class:`AdaBelief` for the math)."""
    beta1, beta2 = betas
    g = torch._foreach_add(grads, params, alpha=weight_decay)  # g̃_t = g_t + λ θ_{t-1}
    ema_(m, g, beta1)  # m_t
    torch._foreach_sub_(g, m)  # g̃_t - m_t
    ema_sq_(s, g, beta2)  # s_t = β2 s_{t-1} + (1 - β2)(g̃_t - m_t)² ...
    del g
    add_(s, eps)  # ... + ε
    if amsgrad:
        torch._foreach_maximum_(s_max, s)  # s^max_t
    # θ_t = θ_{t-1} - α m̂_t / (√ŝ_t + ε)
    adam_step_(params, m, s_max if amsgrad else s, bias_correction(beta1, step), bias_correction(beta2, step), eps, lr)


class AdaBelief(RuleOptimizer):
    r"""AdaBelief, from "AdaBelief optimizer: adapting stepsizes by the belief in observed gradients".

    With t >= 1, :math:`m_0 = s_0 = 0` and coupled L2 weight decay :math:`\tilde g_t = g_t + \lambda\theta_{t-1}`:

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) \tilde g_t \\
        s_t &= \beta_2 s_{t-1} + (1 - \beta_2) (\tilde g_t - m_t)^2 + \epsilon \\
        \theta_t &= \theta_{t-1} - \alpha \frac{m_t / (1 - \beta_1^t)}{\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}

    (with amsgrad, the running max of s_t replaces s_t in the denominator).

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor).
        betas: (β1, β2), each in [0, 1).
        eps: ε > 0, added inside s_t at every step and to the denominator.
        weight_decay: λ >= 0 (coupled L2).
        amsgrad: use the running max of s_t.
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        capturable, differentiable: torch.optim.Adam's keywords, kept for the signature; True is refused.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
    """

    rule = "adabelief"
    fn = staticmethod(adabelief)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        for name, value in (("capturable", capturable), ("differentiable", differentiable)):
            if value:
                raise ValueError(f"AdaBelief does not support {name}={value!r} yet; leave it at its default")
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
