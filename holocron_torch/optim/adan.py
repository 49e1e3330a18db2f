"""Adan (Xie et al., 2022), official-code convention. The equations are those of ``reference/adan.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ._base import RuleOptimizer, Scalars, Tensors, adam_step_, bias_correction, copy_, ema_, ema_sq_, lincomb, scale_

__all__ = ["Adan", "adan"]


def adan(
    params: Tensors,
    grads: Tensors,
    m: Tensors,
    v: Tensors,
    n: Tensors,
    g_prev: Tensors,
    step: Scalars,
    *,
    lr: Any,
    betas: tuple[float, float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    n_max: Tensors | None = None,
) -> None:
    r"""One Adan step over lists of tensors, in place (see :class:`Adan` for the math)."""
    beta1, beta2, beta3 = betas
    delta = torch._foreach_sub(grads, g_prev)  # Δ_t = g_t - g_{t-1} (g_prev starts as g_1: Δ_1 = 0)
    ema_(m, grads, beta1)  # m_t
    ema_(v, delta, beta2)  # v_t
    delta = torch._foreach_add(grads, delta, alpha=beta2)  # g_t + β2 Δ_t
    ema_sq_(n, delta, beta3)  # n_t
    del delta
    if amsgrad:
        torch._foreach_maximum_(n_max, n)  # n^max_t
    # u_t = (m̂_t + β2 v̂_t) / (√n̂_t + ε), as (m_t + β2 (bc1/bc2) v_t) / bc1 over √n̂_t + ε
    bc1, bc2, bc3 = (bias_correction(b, step) for b in betas)
    num = lincomb(m, v, [beta2 * b1 / b2 for b1, b2 in zip(bc1, bc2)])
    # θ_t = (θ_{t-1} - α u_t) / (1 + α λ)
    adam_step_(params, m, n_max if amsgrad else n, bc1, bc3, eps, lr, num=num)
    if weight_decay:
        scale_(params, 1 / (1 + lr * weight_decay))
    copy_(g_prev, grads)  # remember g_t


class Adan(RuleOptimizer):
    r"""Adan, from "Adan: adaptive Nesterov momentum algorithm for faster optimizing deep models".

    Betas follow the official code (the paper's 1 - β). With t >= 1, :math:`m_0 = v_0 = n_0 = 0`,
    :math:`\Delta_t = g_t - g_{t-1}` and :math:`\Delta_1 = 0`:

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) \Delta_t \\
        n_t &= \beta_3 n_{t-1} + (1 - \beta_3) (g_t + \beta_2 \Delta_t)^2 \\
        u_t &= \frac{m_t/(1 - \beta_1^t) + \beta_2 v_t/(1 - \beta_2^t)}{\sqrt{n_t/(1 - \beta_3^t)} + \epsilon},
        \qquad \theta_t = \frac{\theta_{t-1} - \alpha u_t}{1 + \alpha\lambda}

    Args:
        params: parameters or param-group dicts.
        lr: α (a float or a 0-d tensor).
        betas: (β1, β2, β3), each in [0, 1), official-code convention.
        eps: ε > 0.
        weight_decay: λ >= 0, the proximal step (no L2 term in the gradient).
        amsgrad: use the running max of n_t (holocron's extension; not in the paper).
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
    """

    rule = "adan"
    fn = staticmethod(adan)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
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
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )

    def _initial_state(self, name: str, p: Tensor, g: Tensor, group: dict[str, Any]) -> Tensor:
        if name == "g_prev":  # the previous gradient starts as g_1, so that Δ_1 = 0
            return g.detach().clone(memory_format=torch.preserve_format)
        return super()._initial_state(name, p, g, group)
