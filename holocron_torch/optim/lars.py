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
    split_by_size,
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
    # v_t = m v_{t-1} + (1 - δ) γ_t d_t, d_t = g_t + λ θ_{t-1}  (no dampening at t = 1, where v_0 = 0)
    k = [where(t > 1, 1.0 - dampening, 1.0) * c for t, c in zip(step, gamma)]
    scale_(v, momentum)
    if nesterov:  # θ_t = θ_{t-1} - α (γ_t d_t + m v_t)
        d = torch._foreach_add(grads, params, alpha=weight_decay)
        axpy_(v, d, k)
        axpy_(params, d, [-lr * c for c in gamma])
        axpy_(params, v, -lr * momentum)
    else:  # θ_t = θ_{t-1} - α v_t
        # a small tensor forms d_t (in cache: one scaled add per tensor); a large one adds d_t's two terms instead
        # of writing a temporary of its size. Chosen by size, so a tensor's numbers never depend on its batch.
        small, large = split_by_size(params)
        if small:
            d = torch._foreach_add([grads[i] for i in small], [params[i] for i in small], alpha=weight_decay)
            axpy_([v[i] for i in small], d, [k[i] for i in small])
        axpy_([v[i] for i in large], [grads[i] for i in large], [k[i] for i in large])
        axpy_([v[i] for i in large], [params[i] for i in large], [k[i] * weight_decay for i in large])
        axpy_(params, v, -lr)


class LARS(RuleOptimizer):
    r"""LARS: layer-wise adaptive rate scaling, from "Large batch training of convolutional networks".

    For each parameter tensor, with t >= 1:

    .. math::
        d_t &= g_t + \lambda \theta_{t-1} \\
        \gamma_t &= \frac{\phi(\lVert \theta_{t-1} \rVert)}{\lVert g_t \rVert + \lambda \lVert \theta_{t-1} \rVert}
            \quad (1 \text{ if either norm is } 0) \\
        v_t &= m v_{t-1} + (1 - \delta) \gamma_t d_t \quad (v_1 = \gamma_1 d_1) \\
        \theta_t &= \theta_{t-1} - \alpha v_t \quad (\text{nesterov: } \alpha(\gamma_t d_t + m v_t))

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor). Use a torch LR scheduler for the paper's polynomial decay.
        momentum: m in [0, 1).
        dampening: δ in [0, 1], applied from the second step on (torch SGD's convention).
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
