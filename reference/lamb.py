r"""LAMB (You et al., 2019, arXiv:1904.00962, Algorithm 2), per parameter tensor, for t >= 1:

    m_t = β1 m_{t-1} + (1 - β1) g_t
    v_t = β2 v_{t-1} + (1 - β2) g_t²
    m̂_t = m_t / (1 - β1^t)
    v̂_t = v_t / (1 - β2^t)
    r_t = m̂_t / (√v̂_t + ε)
    u_t = r_t + λ θ_{t-1}
    τ_t = φ(‖θ_{t-1}‖) / ‖u_t‖                 (τ_t = 1 if either norm is 0)
    θ_t = θ_{t-1} - α τ_t u_t

m_0 = v_0 = 0; φ(z) = min(max(z, lo), hi) with (lo, hi) = scale_clip, (0, 10) when None (holocron's default).
The spec's denominator ‖r_t + θ_t‖ drops λ and uses θ_t; the paper's is ‖r_t + λ θ_{t-1}‖ (docs/errata.md).

symbol  argument             symbol  argument
α       lr                   ε       eps
β1, β2  betas                λ       weight_decay
m, v    State.m, State.v     t       State.t
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays, norm, phi, trust

DEFAULT_CLIP = (0.0, 10.0)


class State(NamedTuple):
    m: Arrays
    v: Arrays
    t: int


def init(params: Arrays, **hp) -> State:
    zeros = [np.zeros_like(p, dtype=np.float64) for p in params]
    return State(m=zeros, v=[z.copy() for z in zeros], t=0)


def step(
    params, grads, state: State, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, scale_clip=None
) -> tuple[Arrays, State]:
    (beta1, beta2), clip_ = betas, DEFAULT_CLIP if scale_clip is None else scale_clip
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    new_p, new_m, new_v = [], [], []
    for theta, g, m, v in zip(params, grads, state.m, state.v):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        r = m_hat / (np.sqrt(v_hat) + eps)
        u = r + weight_decay * theta
        tau = trust(phi(norm(theta), clip_), norm(u))
        new_p.append(theta - lr * tau * u)
        new_m.append(m)
        new_v.append(v)
    return new_p, State(m=new_m, v=new_v, t=t)
