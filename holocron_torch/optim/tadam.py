"""TAdam (Ilboudo, Kobayashi & Sugimoto, 2020). The equations are those of ``reference/tadam.py``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ._base import (
    RuleOptimizer,
    Scalars,
    Tensors,
    adam_step_,
    add_,
    bias_correction,
    ema_sq_,
    fixed_sum,
    host_values,
    is_host,
    lerp_,
)

__all__ = ["TAdam", "tadam"]


def tadam(
    params: Tensors,
    grads: Tensors,
    m: Tensors,
    v: Tensors,
    W: Tensors,
    step: Scalars,
    *,
    lr: Any,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    dof: float | None,
    v_max: Tensors | None = None,
) -> None:
    r"""One TAdam step over lists of tensors, in place (see :class:`TAdam` for the math)."""
    beta1, beta2 = betas
    g_hat = torch._foreach_add(grads, params, alpha=weight_decay)  # ĝ_t = g_t + λ θ_{t-1}
    # w_t = (ν + d) / (ν + Σ_j (ĝ_t - m_{t-1})² / (v_{t-1} + ε)), 1 when ν = ∞
    if dof is not None and math.isinf(dof):
        w = [1.0] * len(params)
    else:
        # the device path (no branch on values) sums float16/bfloat16/float32 terms in float64, where the terms of
        # finite inputs cannot overflow (a non-finite sum means a non-finite input: w_t NaN, as the reference); the
        # host path sums in the dtype and recomputes in float64 only a sum that overflowed (below)
        wide = not is_host(step[0]) and params[0].dtype != torch.float64
        up = (lambda xs: [x.to(torch.float64) for x in xs]) if wide else (lambda xs: xs)
        dist = torch._foreach_sub(up(g_hat), up(m))
        torch._foreach_mul_(dist, dist)
        torch._foreach_div_(dist, torch._foreach_add(up(v), eps))
        # fixed_sum: the same bits whatever the number of threads (a resumed run continues bitwise on any machine)
        sums = host_values([fixed_sum(x) for x in dist], step)
        del dist
        if is_host(step[0]):  # a sum whose terms overflowed the dtype (inf from finite inputs): again in float64
            for i, s in enumerate(sums):
                if s == math.inf:
                    x = (g_hat[i].to(torch.float64) - m[i]).square_().div_(v[i].to(torch.float64) + eps)
                    sums[i] = fixed_sum(x).item()
        nus = [float(p.numel() if dof is None else dof) for p in params]  # numel: the whole (logical) tensor's
        # (a non-finite sum, from a NaN or an inf, makes w_t NaN as in the reference: the whole tensor's update is NaN)
        w = [
            1.0
            if not p.numel()
            else ((nu + p.numel()) / (nu + s) if math.isfinite(s) else math.nan)
            if is_host(s)
            else torch.where(torch.isfinite(s), (nu + p.numel()) / (nu + s), math.nan)
            for nu, p, s in zip(nus, params, sums)
        ]
    # m_t = W_{t-1}/(W_{t-1} + w_t) m_{t-1} + w_t/(W_{t-1} + w_t) ĝ_t
    lerp_(m, g_hat, [wi / (Wi + wi) for wi, Wi in zip(w, host_values(W, step))])
    # W_t = (2β1 - 1)/β1 W_{t-1} + w_t
    torch._foreach_mul_(W, (2 * beta1 - 1) / beta1)
    add_(W, w)
    ema_sq_(v, g_hat, beta2)  # v_t
    del g_hat
    if amsgrad:
        torch._foreach_maximum_(v_max, v)  # v^max_t
    # θ_t = θ_{t-1} - α m̂_t / (√v̂_t + ε)
    adam_step_(params, m, v_max if amsgrad else v, bias_correction(beta1, step), bias_correction(beta2, step), eps, lr)


class TAdam(RuleOptimizer):
    r"""TAdam, from "TAdam: a robust stochastic gradient optimizer" (Student-t weighted first moment).

    For each parameter tensor of d elements, ν = dof (d when None), t >= 1, :math:`W_0 = \beta_1/(1-\beta_1)`:

    .. math::
        \hat g_t &= g_t + \lambda \theta_{t-1} \\
        w_t &= (\nu + d) \Big(\nu + \sum_j \frac{(\hat g_{t,j} - m_{t-1,j})^2}{v_{t-1,j} + \epsilon}\Big)^{-1} \\
        m_t &= \frac{W_{t-1}}{W_{t-1} + w_t} m_{t-1} + \frac{w_t}{W_{t-1} + w_t} \hat g_t, \qquad
        W_t = \frac{2\beta_1 - 1}{\beta_1} W_{t-1} + w_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) \hat g_t^2, \qquad
        \theta_t = \theta_{t-1} - \alpha \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    ``dof=inf`` gives w_t = 1, i.e. Adam. ``W`` is stored as a 0-d tensor in the parameter's dtype.

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor).
        betas: (β1, β2); β1 in [0.5, 1) so that W_t's factor is >= 0, β2 in [0, 1).
        eps: ε > 0.
        weight_decay: λ >= 0 (coupled L2, as in the authors' code).
        amsgrad: use the running max of v_t in the denominator.
        dof: ν > 0, inf, or None (= the tensor's numel).
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
    """

    rule = "tadam"
    fn = staticmethod(tadam)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        dof: float | None = None,
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
            amsgrad=amsgrad,
            dof=dof,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )

    def _initial_state(self, name: str, p: Tensor, g: Tensor, group: dict[str, Any]) -> Tensor:
        if name == "W":  # W_0 = β1 / (1 - β1), one scalar per tensor
            beta1 = group["betas"][0]
            return torch.full((), beta1 / (1 - beta1), dtype=p.dtype, device=p.device)
        return super()._initial_state(name, p, g, group)
