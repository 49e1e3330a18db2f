"""AdEMAMix (Pagliardini, Ablin & Grangier, 2024). The equations are those of ``reference/ademamix.py``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ._base import (
    RuleOptimizer,
    Scalars,
    Tensors,
    adam_step_,
    bias_correction,
    ema_,
    ema_sq_,
    exp,
    is_host,
    lerp_,
    lincomb,
    scale_,
    where,
)

__all__ = ["AdEMAMix", "ademamix"]


def ademamix(
    params: Tensors,
    grads: Tensors,
    m1: Tensors,
    m2: Tensors,
    nu: Tensors,
    step: Scalars,
    *,
    lr: Any,
    betas: tuple[float, float, float],
    alpha: float,
    eps: float,
    weight_decay: float,
    alpha_warmup: int | None,
    beta3_warmup: int | None,
) -> None:
    r"""One AdEMAMix step over lists of tensors, in place (see :class:`AdEMAMix` for the math)."""
    beta1, beta2, beta3 = betas
    # α_t: linear warm-up over T_α steps
    a_t = [alpha if alpha_warmup is None else where(t < alpha_warmup, alpha * t / alpha_warmup, alpha) for t in step]
    # β3_t: from β1 to β3, linear in half-life, over T_β3 steps
    b3_t = [beta3 if beta3_warmup is None else _beta3_t(t, beta1, beta3, beta3_warmup) for t in step]
    ema_(m1, grads, beta1)  # m1_t
    lerp_(m2, grads, [1 - b for b in b3_t])  # m2_t = β3_t m2 + (1 - β3_t) g
    ema_sq_(nu, grads, beta2)  # ν_t
    # θ_t = θ_{t-1} - η ((m̂1_t + α_t m2_t) / (√ν̂_t + ε) + λ θ_{t-1}), the numerator as (m1_t + α_t bc1 m2_t) / bc1
    bc1, bc2 = bias_correction(beta1, step), bias_correction(beta2, step)
    num = lincomb(m1, m2, [a * b for a, b in zip(a_t, bc1)])
    if weight_decay:
        scale_(params, 1 - lr * weight_decay)
    adam_step_(params, m1, nu, bc1, bc2, eps, lr, num=num)


def _beta3_t(t: Any, beta1: float, beta3: float, warmup: int) -> Any:
    """β3_t = exp(ln β1 ln β3 / ((1 - t/T) ln β3 + (t/T) ln β1)) for t < T, β3 from T on."""
    if is_host(t) and t >= warmup:  # the host path evaluates only the branch taken (its denominator may be 0 later)
        return beta3
    l1, l3, f = math.log(beta1), math.log(beta3), t / warmup
    return where(t < warmup, exp(l1 * l3 / ((1 - f) * l3 + f * l1)), beta3)


class AdEMAMix(RuleOptimizer):
    r"""AdEMAMix, from "The AdEMAMix optimizer: better, faster, older".

    With t >= 1 and all moments starting at 0:

    .. math::
        m_{1,t} &= \beta_1 m_{1,t-1} + (1 - \beta_1) g_t, \qquad
        m_{2,t} = \beta_{3,t} m_{2,t-1} + (1 - \beta_{3,t}) g_t, \qquad
        \nu_t = \beta_2 \nu_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &= \theta_{t-1} - \eta \Big( \frac{m_{1,t}/(1 - \beta_1^t) + \alpha_t m_{2,t}}
            {\sqrt{\nu_t/(1 - \beta_2^t)} + \epsilon} + \lambda \theta_{t-1} \Big)

    with the warm-ups :math:`\alpha_t = \alpha \min(1, t/T_\alpha)` and :math:`\beta_{3,t}` moving from β1 to β3
    linearly in half-life over :math:`T_{\beta_3}` steps (constant α, β3 when the warm-up is None).

    Args:
        params: parameters or param-group dicts.
        lr: η (a float or a 0-d tensor).
        betas: (β1, β2, β3), each in [0, 1): fast EMA, second moment, slow EMA.
        alpha: α >= 0, the weight of the slow EMA.
        eps: ε > 0.
        weight_decay: λ >= 0 (decoupled, AdamW-style, as in the paper).
        alpha_warmup: T_α, steps of linear warm-up of α (None: none).
        beta3_warmup: T_β3, steps of half-life warm-up of β3 (None: none; needs β1 > 0).
        amsgrad: listed by the spec, but AdEMAMix has no AMSGrad variant: True is refused.
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
    """

    rule = "ademamix"
    fn = staticmethod(ademamix)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        alpha_warmup: int | None = None,
        beta3_warmup: int | None = None,
        amsgrad: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        if amsgrad is not False:
            raise ValueError(f"AdEMAMix has no AMSGrad variant: amsgrad must be False, got {amsgrad!r}")
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            alpha_warmup=alpha_warmup,
            beta3_warmup=beta3_warmup,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
