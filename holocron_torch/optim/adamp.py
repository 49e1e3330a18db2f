"""AdamP (Heo et al., 2021). The equations are those of ``reference/adamp.py``."""

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
    adam_denom,
    addcdiv_,
    axpy_,
    bias_correction,
    ema_,
    ema_sq_,
    host_values,
    is_host,
    reduced,
    scale_,
    sqrt,
)

__all__ = ["AdamP", "adamp"]


def _views(theta: Tensor) -> tuple[tuple[int, ...], ...]:
    """The dims that span a row of each view AdamP tries, in order: one row per output channel (dims 1..n), then
    one row for the whole tensor; none for a tensor with < 2 dims (or no elements), which is never projected."""
    if theta.dim() < 2 or theta.numel() == 0:
        return ()
    return tuple(range(1, theta.dim())), tuple(range(theta.dim()))


def _tangent(theta: Tensor, g: Tensor, dims: tuple[int, ...], delta: float, eps: float) -> tuple[Tensor, Tensor]:
    """(whether g ⟂ θ in this view: max_i |cos(g_i, θ_i)| < δ/√(row length), a bool 0-d tensor; the rows' ‖θ_i‖,
    which the projection reuses). Sums over dims
    rather than a reshape to 2-d: on a sharded DTensor a flattening reshape would gather the tensor, a sum over
    dims is an all-reduce of partial sums."""
    # (the device-scalar path cannot branch on values: a narrower dtype's row norms and g · θ, which overflow it
    # for weights near 1e30, are float64, and so is the projection's coefficient, see _projected)
    acc = torch.float64
    t_norm = reduced(torch.linalg.vector_norm(theta, dim=dims, keepdim=True, dtype=acc))
    g_norm = reduced(torch.linalg.vector_norm(g, dim=dims, keepdim=True, dtype=acc))
    cos = reduced((g.to(acc) * theta).sum(dim=dims, keepdim=True)) / (g_norm.clamp_min(eps) * t_norm.clamp_min(eps))
    threshold = delta / math.sqrt(math.prod([theta.shape[d] for d in dims]))
    # "no row reaches it" (nor is NaN): a count is 0, not an error, on a rank that holds no row of a sharded tensor
    return reduced((~(cos.abs() < threshold)).sum()) == 0, t_norm


def _host_stats(theta: Tensor, g: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, ...]:
    """For a plain tensor (the host path): max_i |cos(g_i, θ_i)| over the output channels, then ‖θ‖, ‖g‖ and g · θ
    of the whole tensor from the rows' (so one pass over θ and g serves both views), then the rows' ‖θ_i‖."""
    t_norm = torch.linalg.vector_norm(theta, dim=dims, keepdim=True)
    g_norm = torch.linalg.vector_norm(g, dim=dims, keepdim=True)
    dot = (g * theta).sum(dim=dims, keepdim=True)
    cos = dot / (g_norm.clamp_min(eps) * t_norm.clamp_min(eps))
    vn = torch.linalg.vector_norm
    return cos.abs().amax(), vn(t_norm), vn(g_norm), dot.sum(), t_norm


def _fits(dtype: torch.dtype, ch_max: float, t_layer: float, g_layer: float, dot_layer: float) -> bool:
    """Whether a tensor's cosine statistics, computed in ``dtype``, kept their values: finite, and ‖θ‖ small enough
    that the projection's (‖θ_i‖ + ε)² does not overflow the dtype. (NaN statistics from non-finite inputs are
    NaN in float64 too: recomputing them changes nothing.)"""
    return math.isfinite(ch_max + t_layer + g_layer + dot_layer) and t_layer < math.sqrt(torch.finfo(dtype).max) / 4


def _projected(theta: Tensor, p: Tensor, dims: tuple[int, ...], t_norm: Tensor, eps: float) -> Tensor:
    """q_i = p_i - (n_i · p_i) n_i with n_i = θ_i / (‖θ_i‖ + ε), as p_i - ((θ_i · p_i) / (‖θ_i‖ + ε)²) θ_i, in the
    dtype of the row norms ``t_norm`` (float64 on the device-scalar path: then q is float64)."""
    acc = t_norm.dtype if isinstance(t_norm, Tensor) else theta.dtype
    dot = reduced((theta.to(acc) * p).sum(dim=dims, keepdim=True))
    return torch.addcmul(p, theta, dot / (t_norm + eps) ** 2, value=-1)


def adamp(
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
    amsgrad: bool,
    delta: float,
    wd_ratio: float,
    nesterov: bool,
    v_max: Tensors | None = None,
) -> None:
    r"""One AdamP step over lists of tensors, in place (see :class:`AdamP` for the math)."""
    beta1, beta2 = betas
    ema_(m, grads, beta1)  # m_t
    ema_sq_(v, grads, beta2)  # v_t
    if amsgrad:
        torch._foreach_maximum_(v_max, v)  # v^max_t
    bc1, bc2 = bias_correction(beta1, step), bias_correction(beta2, step)
    # p_t = m_t / D_t (nesterov: (β1 m_t + (1 - β1) g_t) / D_t), D_t = √v_t / √(1 - β2^t) + ε; here as
    # √(1 - β2^t) · num / denom, with denom = √v_t + ε √(1 - β2^t), the √(1 - β2^t) folded into the step size k
    num = torch._foreach_lerp(m, grads, 1 - beta1) if nesterov else m
    denom = adam_denom(v_max if amsgrad else v, bc2, eps)
    k = [-lr * sqrt(b2) / b1 for b1, b2 in zip(bc1, bc2)]  # θ_t = θ_{t-1} (1 - α λ r) - α / (1 - β1^t) q_t
    # the first view in which g ⟂ θ projects p_t onto θ's tangent space (q_t), and scales the decay by wd_ratio
    views = [_views(th) for th in params]
    host = is_host(step[0])
    if host:  # both views' cosines from one pass of row statistics, read back once; project in the view chosen
        stats = [_host_stats(th, g, vs[0], eps) if vs else () for th, g, vs in zip(params, grads, views)]
        flat = iter(host_values([x for st in stats for x in st[:4]], step))
        chosen: list[int | None] = []
        norm_of_view: dict[int, Any] = {}  # the ‖θ_i‖ of the view chosen, for the projection
        wide: set[int] = set()  # tensors whose statistics and projection are computed in float64
        for i, (th, vs) in enumerate(zip(params, views)):
            if not vs:
                chosen.append(None)
                continue
            ch_max, t_layer, g_layer, dot_layer = (next(flat) for _ in range(4))
            if th.dtype != torch.float64 and not _fits(th.dtype, ch_max, t_layer, g_layer, dot_layer):
                # a row norm, g · θ or (‖θ_i‖ + ε)² overflowed the dtype (float32/bfloat16 weights near 1e30):
                # this tensor's statistics and projection in float64, as the reference (no cost on the others)
                stats[i] = _host_stats(th.double(), grads[i].double(), vs[0], eps)
                ch_max, t_layer, g_layer, dot_layer = (x.item() for x in stats[i][:4])
                wide.add(i)
            cos_layer = abs(dot_layer) / (max(g_layer, eps) * max(t_layer, eps))
            ok = (ch_max < delta / math.sqrt(th[0].numel()), cos_layer < delta / math.sqrt(th.numel()))
            j = next((j for j in range(2) if ok[j]), None)
            chosen.append(j)
            if j is not None:
                norm_of_view[i] = stats[i][4] if j == 0 else t_layer
        rs: list[Any] = [1.0 if j is None else wd_ratio for j in chosen]
        qs = {}
        for i, t in norm_of_view.items():
            if i in wide:
                p64 = num[i].double() / denom[i].double()
                qs[i] = _projected(params[i].double(), p64, views[i][chosen[i]], t, eps).to(params[i].dtype)
            else:
                qs[i] = _projected(params[i], num[i] / denom[i], views[i][chosen[i]], t, eps)
    else:  # every view's projection, selected by a nested where: the first view that projects wins
        tangent = [[_tangent(th, g, dims, delta, eps) for dims in vs] for th, g, vs in zip(params, grads, views)]
        p_t = torch._foreach_div(num, denom)
        rs, qs = [], {}
        for i, (th, vs, ok) in enumerate(zip(params, views, tangent)):
            q, r = p_t[i], torch.ones((), dtype=th.dtype, device=th.device)
            for dims, (flag, t_norm) in reversed(list(zip(vs, ok))):
                q = torch.where(flag, _projected(th, p_t[i], dims, t_norm, eps), q)
                r = torch.where(flag, torch.full_like(r, wd_ratio), r)
            qs[i] = q
            rs.append(r)
    if weight_decay:
        scale_(params, [1 - lr * weight_decay * r for r in rs])
    rest = [i for i in range(len(params)) if i not in qs]  # (host) tensors not projected: q_t = p_t
    addcdiv_(*([xs[i] for i in rest] for xs in (params, num, denom)), [k[i] for i in rest])
    axpy_([params[i] for i in qs], list(qs.values()), [k[i] for i in qs])


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
        foreach: None (default): multi-tensor on CUDA, cache-sized batches with host scalars on CPU; True: one
            multi-tensor call per (device, dtype); False: a per-tensor loop.
        maximize: maximize the objective instead.
        fused: True: the hand-fused C++ CPU kernel (built at construction, cached), and on CUDA the update under
            torch.compile (holocron_torch/optim/_fused); None/False: the default path (pure torch).
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
        fused: bool | None = None,
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
            fused=fused,
        )
