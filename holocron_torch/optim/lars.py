"""LARS (You, Gitman & Ginsburg, 2017). The equations are those of ``reference/lars.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ._base import (
    RuleOptimizer,
    Scalars,
    Tensors,
    axpy_,
    clip_norm,
    norms,
    scale_,
    trust_ratio,
    where,
)

__all__ = ["LARS", "lars"]


def lars(
    params: Tensors,
    grads: Tensors,
    v: Tensors,
    step: Scalars,
    *,
    lr: Any,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    scale_clip: tuple[float, float] | None,
) -> None:
    r"""One LARS step over lists of tensors, in place (see :class:`LARS` for the math)."""
    p_norm, g_norm = norms(params, step), norms(grads, step)
    # γ_t = φ(‖θ_{t-1}‖) / (‖g_t‖ + λ ‖θ_{t-1}‖), 1 if either is 0
    gamma = trust_ratio(clip_norm(p_norm, scale_clip), [g + weight_decay * p for g, p in zip(g_norm, p_norm)], params)
    # v_t = m v_{t-1} + (1 - δ) γ_t d_t, d_t = g_t + λ θ_{t-1}  (no dampening at t = 1, where v_0 = 0, nor with
    # m = 0, where torch SGD keeps no buffer: v_t = γ_t d_t)
    k = [where(t > 1, 1.0 - dampening, 1.0) * c if momentum != 0 else c for t, c in zip(step, gamma)]
    if momentum != 0:
        scale_(v, momentum)
    else:  # torch SGD keeps no buffer without momentum: v_{t-1} is not read (a NaN left in it stays out of the step)
        torch._foreach_zero_(v)
    # γ_t d_t added as γ_t g_t + (γ_t λ) θ_{t-1}: neither λ θ_{t-1} nor a γ_t beyond the dtype's range is formed in it
    # (a float32 λθ of 1e39 is inf, while γ_t d_t, with γ_t ~ 1/λ, is not); no temporary of a tensor's size
    axpy_(v, grads, k, skip_zeros=False)  # (γ_t = 0 from an inf ‖g_t‖: 0 · inf = NaN reaches v, as in the reference)
    axpy_(v, params, [c * weight_decay for c in k])
    if nesterov:  # θ_t = θ_{t-1} - α (γ_t d_t + m v_t)
        if weight_decay:  # θ_t = θ_{t-1} (1 - α γ_t λ) - α γ_t g_t - α m v_t
            scale_(params, [1 - lr * c * weight_decay for c in gamma])
        axpy_(params, grads, [-lr * c for c in gamma], skip_zeros=False)
        axpy_(params, v, -lr * momentum)
    else:  # θ_t = θ_{t-1} - α v_t
        axpy_(params, v, -lr)


class LARS(RuleOptimizer):
    r"""LARS: layer-wise adaptive rate scaling, from "Large batch training of convolutional networks".

    For each parameter tensor, with t >= 1:

    .. math::
        d_t &= g_t + \lambda \theta_{t-1} \\
        \gamma_t &= \frac{\phi(\lVert \theta_{t-1} \rVert)}{\lVert g_t \rVert + \lambda \lVert \theta_{t-1} \rVert}
            \quad (1 \text{ if either norm is } 0) \\
        v_t &= m v_{t-1} + (1 - \delta) \gamma_t d_t \quad (v_t = \gamma_t d_t \text{ if } t = 1 \text{ or } m = 0) \\
        \theta_t &= \theta_{t-1} - \alpha v_t \quad (\text{nesterov: } \alpha(\gamma_t d_t + m v_t))

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor). Use a torch LR scheduler for the paper's polynomial decay.
        momentum: m in [0, 1).
        dampening: δ in [0, 1], applied from the second step on and only with momentum > 0 (torch SGD's
            convention).
        weight_decay: λ >= 0, an L2 term that also enters the local LR's denominator.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        scale_clip: (lo, hi) clamp φ on ‖θ‖ in the local LR; None: no clamp.
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
    """

    rule = "lars"
    fn = staticmethod(lars)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        scale_clip: tuple[float, float] | None = None,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            scale_clip=scale_clip,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
