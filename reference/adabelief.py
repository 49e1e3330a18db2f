r"""AdaBelief (Zhuang et al., 2020, arXiv:2010.07468, Algorithm 2), with coupled L2 weight decay as in the
spec, and without the official package's optional rectification. Per element, for t >= 1:

    g̃_t = g_t + λ θ_{t-1}
    m_t = β1 m_{t-1} + (1 - β1) g̃_t
    s_t = β2 s_{t-1} + (1 - β2) (g̃_t - m_t)² + ε        (ε is added every step and stays in s)
    s^max_t = max(s^max_{t-1}, s_t)                      (amsgrad only)
    m̂_t = m_t / (1 - β1^t)
    ŝ_t = s_t / (1 - β2^t)          (s^max_t / (1 - β2^t) with amsgrad)
    θ_t = θ_{t-1} - α m̂_t / (√ŝ_t + ε)

m_0 = s_0 = 0.

symbol  argument             symbol  argument
α       lr                   ε       eps
β1, β2  betas                λ       weight_decay
m, s    State.m, State.s     s^max   State.s_max
t       State.t
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays


class State(NamedTuple):
    m: Arrays
    s: Arrays
    t: int
    s_max: Arrays | None = None


def init(params: Arrays, *, amsgrad=False, **hp) -> State:
    zeros = [np.zeros_like(p, dtype=np.float64) for p in params]
    return State(m=zeros, s=[z.copy() for z in zeros], t=0, s_max=[z.copy() for z in zeros] if amsgrad else None)


def step(
    params, grads, state: State, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False
) -> tuple[Arrays, State]:
    beta1, beta2 = betas
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    smaxes = state.s_max if amsgrad else [None] * len(params)
    new_p, new_m, new_s, new_smax = [], [], [], []
    for theta, g, m, s, s_max in zip(params, grads, state.m, state.s, smaxes):
        g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * (g - m) ** 2 + eps
        s_max = np.maximum(s_max, s) if amsgrad else None
        m_hat = m / (1 - beta1**t)
        s_hat = (s_max if amsgrad else s) / (1 - beta2**t)
        new_p.append(theta - lr * m_hat / (np.sqrt(s_hat) + eps))
        new_m.append(m)
        new_s.append(s)
        new_smax.append(s_max)
    return new_p, State(m=new_m, s=new_s, t=t, s_max=new_smax if amsgrad else None)
