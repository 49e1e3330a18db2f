r"""Adan: adaptive Nesterov momentum (Xie et al., 2022, arXiv:2208.06677), as in the official code
(sail-sg/Adan), whose betas are the paper's 1 - β. Per element, for t >= 1:

    Δ_t = g_t - g_{t-1}                      (Δ_1 = 0: the previous gradient starts as g_1)
    m_t = β1 m_{t-1} + (1 - β1) g_t
    v_t = β2 v_{t-1} + (1 - β2) Δ_t
    n_t = β3 n_{t-1} + (1 - β3) (g_t + β2 Δ_t)²
    n^max_t = max(n^max_{t-1}, n_t)         (amsgrad only; holocron's extension)
    m̂_t = m_t / (1 - β1^t)
    v̂_t = v_t / (1 - β2^t)
    n̂_t = n_t / (1 - β3^t)                  (n^max_t / (1 - β3^t) with amsgrad)
    u_t = (m̂_t + β2 v̂_t) / (√n̂_t + ε)
    θ_t = (θ_{t-1} - α u_t) / (1 + α λ)       (proximal weight decay; no L2 term in g)

m_0 = v_0 = n_0 = 0. The spec's (1 - β2) v̂_t mixes the paper's convention into the code's, and its
"L2 penalty" is the proximal step above (docs/errata.md).

symbol      argument                 symbol  argument
α           lr                       ε       eps
β1, β2, β3  betas                    λ       weight_decay
m, v, n     State.m, State.v, State.n
g_{t-1}     State.g_prev             n^max   State.n_max;  t  State.t
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays


class State(NamedTuple):
    m: Arrays
    v: Arrays
    n: Arrays
    g_prev: Arrays
    t: int
    n_max: Arrays | None = None


def init(params: Arrays, *, amsgrad=False, **hp) -> State:
    def zeros():
        return [np.zeros_like(p, dtype=np.float64) for p in params]

    return State(m=zeros(), v=zeros(), n=zeros(), g_prev=zeros(), t=0, n_max=zeros() if amsgrad else None)


def step(
    params,
    grads,
    state: State,
    *,
    lr=1e-3,
    betas=(0.98, 0.92, 0.99),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
) -> tuple[Arrays, State]:
    beta1, beta2, beta3 = betas
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    nmaxes = state.n_max if amsgrad else [None] * len(params)
    new = {"p": [], "m": [], "v": [], "n": [], "g_prev": [], "n_max": []}
    for theta, g, m, v, n, g_prev, n_max in zip(params, grads, state.m, state.v, state.n, state.g_prev, nmaxes):
        delta = g - g_prev if t > 1 else np.zeros_like(g)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * delta
        n = beta3 * n + (1 - beta3) * (g + beta2 * delta) ** 2
        n_max = np.maximum(n_max, n) if amsgrad else None
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        n_hat = (n_max if amsgrad else n) / (1 - beta3**t)
        u = (m_hat + beta2 * v_hat) / (np.sqrt(n_hat) + eps)
        new["p"].append((theta - lr * u) / (1 + lr * weight_decay))
        for k, x in (("m", m), ("v", v), ("n", n), ("g_prev", g), ("n_max", n_max)):
            new[k].append(x)
    return new["p"], State(
        m=new["m"], v=new["v"], n=new["n"], g_prev=new["g_prev"], t=t, n_max=new["n_max"] if amsgrad else None
    )
