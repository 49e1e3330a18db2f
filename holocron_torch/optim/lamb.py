"""LAMB (You et al., 2019). The equations are those of ``reference/lamb.py``."""

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
    clip_norm,
    ema_,
    ema_sq_,
    norms,
    scaled,
    sqrt,
    trust_ratio,
)

__all__ = ["LAMB", "lamb", "trust_update_", "DEFAULT_CLIP"]

DEFAULT_CLIP = (0.0, 10.0)


def lamb(
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
    scale_clip: tuple[float, float] | None,
) -> None:
    r"""One LAMB step over lists of tensors, in place (see :class:`LAMB` for the math)."""
    beta1, beta2 = betas
    ema_(m, grads, beta1)  # m_t
    ema_sq_(v, grads, beta2)  # v_t
    # u_t = r_t + λ θ_{t-1}, r_t = m̂_t / (√v̂_t + ε)
    u = scaled(params, weight_decay)
    bc1, bc2 = bias_correction(beta1, step), bias_correction(beta2, step)
    addcdiv_(u, m, adam_denom(v, bc2, eps), [sqrt(b2) / b1 for b1, b2 in zip(bc1, bc2)])
    trust_update_(params, u, step, lr=lr, scale_clip=scale_clip)  # θ_t = θ_{t-1} - α τ_t u_t


def trust_update_(
    params: Tensors, u: Tensors, step: Scalars, *, lr: Any, scale_clip: tuple[float, float] | None
) -> None:
    """θ_t = θ_{t-1} - α τ_t u_t with τ_t = φ(‖θ_{t-1}‖) / ‖u_t‖ (1 if either norm is 0): the last step of LAMB
    and of RaLars."""
    tau = trust_ratio(clip_norm(norms(params, step), scale_clip or DEFAULT_CLIP), norms(u, step), params)
    axpy_(params, u, [-lr * x for x in tau], skip_zeros=False)  # (τ_t = 0 must still turn an inf of u_t into NaN)


class LAMB(RuleOptimizer):
    r"""LAMB, from "Large batch optimization for deep learning: training BERT in 76 minutes".

    For each parameter tensor, with t >= 1, :math:`m_0 = v_0 = 0`:

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        r_t &= \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}, \qquad
        u_t = r_t + \lambda \theta_{t-1} \\
        \theta_t &= \theta_{t-1} - \alpha \frac{\phi(\lVert \theta_{t-1} \rVert)}{\lVert u_t \rVert} u_t
            \quad (\text{ratio} = 1 \text{ if either norm is } 0)

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor).
        betas: (β1, β2), each in [0, 1).
        eps: ε > 0.
        weight_decay: λ >= 0, added to the adaptive direction inside the trust ratio.
        scale_clip: (lo, hi) bounds of φ on ‖θ‖; None means (0, 10), holocron's default.
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
    """

    rule = "lamb"
    fn = staticmethod(lamb)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
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
            scale_clip=scale_clip,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
