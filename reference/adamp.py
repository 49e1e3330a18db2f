r"""AdamP (Heo et al., 2021, arXiv:2006.08217, Algorithm 2, as in the official clovaai/AdamP code).
Per parameter tensor, for t >= 1:

    m_t = β1 m_{t-1} + (1 - β1) g_t
    v_t = β2 v_{t-1} + (1 - β2) g_t²
    v^max_t = max(v^max_{t-1}, v_t)                         (amsgrad only; holocron's extension)
    D_t = √v_t / √(1 - β2^t) + ε                            (√v^max_t with amsgrad)
    p_t = m_t / D_t        (nesterov: (β1 m_t + (1 - β1) g_t) / D_t)
    For a tensor with >= 2 dims, try the views  (a) rows = output channels,  (b) the whole tensor as one row:
        c_i = |cos(g_i, θ_{t-1,i})|  for every row i;  if max_i c_i < δ / √(row length):
            n_i = θ_{t-1,i} / (‖θ_{t-1,i}‖ + ε);   q_i = p_i - (n_i · p_i) n_i;   r = wd_ratio;  stop
    otherwise (no view projected, < 2 dims, or empty):  q_t = p_t,  r = 1
    θ_t = θ_{t-1} (1 - α λ r) - α / (1 - β1^t) · q_t

m_0 = v_0 = 0. cos(x, y) = x·y / (max(‖x‖, ε) max(‖y‖, ε)). Weight decay is decoupled (the paper's and the
official code's), scaled by wd_ratio when the update was projected. The spec's m_0 = g_0 and p_t = m̂/√(n̂ + ε)
are typos (docs/errata.md).

symbol  argument             symbol  argument
α       lr                   ε       eps
β1, β2  betas                λ       weight_decay
δ       delta                r       wd_ratio (when projected)
m, v    State.m, State.v     v^max   State.v_max;  t  State.t
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays


class State(NamedTuple):
    m: Arrays
    v: Arrays
    t: int
    v_max: Arrays | None = None


def init(params: Arrays, *, amsgrad=False, **hp) -> State:
    zeros = [np.zeros_like(p, dtype=np.float64) for p in params]
    return State(m=zeros, v=[z.copy() for z in zeros], t=0, v_max=[z.copy() for z in zeros] if amsgrad else None)


def views(x: np.ndarray) -> list[np.ndarray]:
    """The rows AdamP tests, in order: per output channel, then the whole tensor."""
    return [x.reshape(x.shape[0], -1), x.reshape(1, -1)]


def cosine(x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """Row-wise cos(x_i, y_i) = x_i·y_i / (max(‖x_i‖, ε) max(‖y_i‖, ε))."""
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    return np.sum(x * y, axis=1) / (np.maximum(nx, eps) * np.maximum(ny, eps))


def project(theta, g, p, *, delta, wd_ratio, eps) -> tuple[np.ndarray, float]:
    """(q, r): p projected onto the tangent space of θ if g is nearly orthogonal to θ in some view."""
    if theta.ndim < 2 or theta.size == 0:
        return p, 1.0
    for th, gv, pv in zip(views(theta), views(g), views(p)):
        if np.max(np.abs(cosine(gv, th, eps))) < delta / math.sqrt(th.shape[1]):
            n = th / (np.linalg.norm(th, axis=1, keepdims=True) + eps)
            return (pv - np.sum(n * pv, axis=1, keepdims=True) * n).reshape(p.shape), wd_ratio
    return p, 1.0


def step(
    params,
    grads,
    state: State,
    *,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    delta=0.1,
    wd_ratio=0.1,
    nesterov=False,
) -> tuple[Arrays, State]:
    beta1, beta2 = betas
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    vmaxes = state.v_max if amsgrad else [None] * len(params)
    new_p, new_m, new_v, new_vmax = [], [], [], []
    for theta, g, m, v, v_max in zip(params, grads, state.m, state.v, vmaxes):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = np.maximum(v_max, v) if amsgrad else None
        D = np.sqrt(v_max if amsgrad else v) / math.sqrt(1 - beta2**t) + eps
        p = (beta1 * m + (1 - beta1) * g) / D if nesterov else m / D
        q, r = project(theta, g, p, delta=delta, wd_ratio=wd_ratio, eps=eps)
        new_p.append(theta * (1 - lr * weight_decay * r) - lr / (1 - beta1**t) * q)
        new_m.append(m)
        new_v.append(v)
        new_vmax.append(v_max)
    return new_p, State(m=new_m, v=new_v, t=t, v_max=new_vmax if amsgrad else None)
