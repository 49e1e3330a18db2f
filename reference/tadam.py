r"""TAdam: Student-t robust Adam (Ilboudo, Kobayashi & Sugimoto, 2020, arXiv:2003.00179, as in the authors'
repository Mahoumaru/TAdam). Per parameter tensor of d = numel(θ) elements, for t >= 1:

    ĝ_t = g_t + λ θ_{t-1}                                                  (coupled L2)
    w_t = (ν + d) / (ν + Σ_j (ĝ_{t,j} - m_{t-1,j})² / (v_{t-1,j} + ε))       (w_t = 1 when ν = ∞)
    m_t = W_{t-1} / (W_{t-1} + w_t) · m_{t-1} + w_t / (W_{t-1} + w_t) · ĝ_t
    W_t = (2β1 - 1) / β1 · W_{t-1} + w_t
    v_t = β2 v_{t-1} + (1 - β2) ĝ_t²
    v^max_t = max(v^max_{t-1}, v_t)                                        (amsgrad only)
    m̂_t = m_t / (1 - β1^t)
    v̂_t = v_t / (1 - β2^t)          (v^max_t / (1 - β2^t) with amsgrad)
    θ_t = θ_{t-1} - α m̂_t / (√v̂_t + ε)

m_0 = v_0 = 0, W_0 = β1 / (1 - β1); ν = dof, or d when dof is None. With ν = ∞, w_t = 1 and W_t stays at its
fixed point W_0, so m_t is Adam's β1-EMA
exactly (also w_t = 1 for an empty tensor). The spec's v_t, an EMA of (g_t - g_{t-1}), is a typo for
g_t² (docs/errata.md); the first update is ≈ 0 because v_0 = 0 makes w_1 ≈ 0 (faithful to the paper's code).

symbol  argument             symbol  argument
α       lr                   ε       eps
β1, β2  betas                λ       weight_decay
ν       dof                  m, v, W State.m, State.v, State.W (W: one scalar per tensor)
v^max   State.v_max          t       State.t
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays


class State(NamedTuple):
    m: Arrays
    v: Arrays
    W: Arrays
    t: int
    v_max: Arrays | None = None


def init(params: Arrays, *, betas=(0.9, 0.999), amsgrad=False, **hp) -> State:
    zeros = [np.zeros_like(p, dtype=np.float64) for p in params]
    W0 = [np.array(betas[0] / (1 - betas[0])) for _ in params]
    return State(m=zeros, v=[z.copy() for z in zeros], W=W0, t=0, v_max=[z.copy() for z in zeros] if amsgrad else None)


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
    dof=None,
) -> tuple[Arrays, State]:
    beta1, beta2 = betas
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    vmaxes = state.v_max if amsgrad else [None] * len(params)
    new = {"p": [], "m": [], "v": [], "W": [], "v_max": []}
    for theta, g, m, v, W, v_max in zip(params, grads, state.m, state.v, state.W, vmaxes):
        d = theta.size
        nu = float(d if dof is None else dof)
        g_hat = g + weight_decay * theta
        s = 0.0 if math.isinf(nu) or d == 0 else float(np.sum((g_hat - m) ** 2 / (v + eps)))
        # (a non-finite sum makes w_t NaN, so that the whole tensor's update is NaN: docs/reliability.md)
        w = 1.0 if math.isinf(nu) or d == 0 else (nu + d) / (nu + s) if math.isfinite(s) else math.nan
        m = W / (W + w) * m + w / (W + w) * g_hat
        W = (2 * beta1 - 1) / beta1 * W + w
        v = beta2 * v + (1 - beta2) * g_hat**2
        v_max = np.maximum(v_max, v) if amsgrad else None
        m_hat = m / (1 - beta1**t)
        v_hat = (v_max if amsgrad else v) / (1 - beta2**t)
        new["p"].append(theta - lr * m_hat / (np.sqrt(v_hat) + eps))
        for k, x in (("m", m), ("v", v), ("W", np.asarray(W, dtype=np.float64)), ("v_max", v_max)):
            new[k].append(x)
    return new["p"], State(m=new["m"], v=new["v"], W=new["W"], t=t, v_max=new["v_max"] if amsgrad else None)
