"""LAMB (You et al., 2019). The equations are those of ``reference/lamb.py``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
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
    is_host,
    norms,
    reduced,
    scaled,
    sqrt,
    trust_ratio,
)

__all__ = ["LAMB", "lamb", "decay_term", "trust_update_", "DEFAULT_CLIP"]

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
    u = decay_term(params, weight_decay, step)
    bc1, bc2 = bias_correction(beta1, step), bias_correction(beta2, step)
    k = [sqrt(b2) / b1 for b1, b2 in zip(bc1, bc2)]
    addcdiv_(u, m, adam_denom(v, bc2, eps), k)

    def wide(i: int) -> torch.Tensor:  # u_t in float64, for a tensor whose u_t overflowed its dtype
        v64 = v[i].to(torch.float64)
        return (
            params[i]
            .to(torch.float64)
            .mul_(weight_decay)
            .addcdiv_(m[i], v64.sqrt_().add_(eps * sqrt(bc2[i])), value=k[i])
        )

    trust_update_(params, u, step, lr=lr, scale_clip=scale_clip, wide=wide)  # θ_t = θ_{t-1} - α τ_t u_t


def decay_term(params: Tensors, weight_decay: float, step: Scalars) -> Tensors:
    """New tensors λ θ_{t-1}, into which u_t = a_t + λ θ_{t-1} is formed: in θ's dtype on the host path (where a
    u_t that overflows is recomputed, see :func:`trust_update_`), in float64 on the device-scalar path for a
    narrower dtype (no branch on values there: λ θ of float32 weights near 3e38 is not formed in float32)."""
    if params and params[0].dtype != torch.float64 and not is_host(step[0]):
        return scaled([p.to(torch.float64) for p in params], weight_decay)
    return scaled(params, weight_decay)


def trust_update_(
    params: Tensors,
    u: Tensors,
    step: Scalars,
    *,
    lr: Any,
    scale_clip: tuple[float, float] | None,
    wide: Callable[[int], torch.Tensor] | None = None,
) -> None:
    """θ_t = θ_{t-1} - α τ_t u_t with τ_t = φ(‖θ_{t-1}‖) / ‖u_t‖ (1 if either norm is 0): the last step of LAMB
    and of RaLars.

    u_t = a_t + λ θ_{t-1} overflows the dtype where λ θ does (λ >= 1, float32 weights near 3e38) although θ_t is
    representable (α τ_t ‖u_t‖ = α φ <= 10 α). On the host path, a tensor whose ‖u_t‖ is not finite has its u_t
    recomputed in float64 by ``wide(i)`` and its update applied there, rounded once into θ (only those tensors: no
    cost on the others). Non-finite inputs stay non-finite in float64, so the non-finite policy is unchanged."""
    phi = clip_norm(norms(params, step), scale_clip or DEFAULT_CLIP)
    if u and u[0].dtype != params[0].dtype:  # u_t in float64 from a narrower dtype's values (device-scalar path,
        # see decay_term): their squares neither underflow nor overflow float64, so torch's norm is exact enough
        nu = [reduced(n) for n in torch._foreach_norm(u)]
    else:
        nu = norms(u, step)
    redo = []
    if wide is not None and params and params[0].dtype != torch.float64 and is_host(step[0]):
        redo = [i for i, n in enumerate(nu) if not math.isfinite(n)]
        for i in redo:
            u64 = wide(i)
            tau = trust_ratio([phi[i]], norms([u64], [step[i]]), [u64])[0]
            params[i].copy_(params[i].to(torch.float64).add_(u64, alpha=-lr * tau))
    if redo:
        keep = [i for i in range(len(params)) if i not in set(redo)]
        params, u, phi, nu = ([xs[i] for i in keep] for xs in (params, u, phi, nu))
        if not params:
            return
    tau = trust_ratio(phi, nu, params)
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
