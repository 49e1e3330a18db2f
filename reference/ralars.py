r"""RaLars: holocron's composition of RAdam's rectified direction (Liu et al., 2019, arXiv:1908.03265) with
the LAMB/LARS layer-wise trust ratio. There is no paper for the composition; holocron 0.3.0's rule is the
definition (docs/errata.md). Per parameter tensor, for t >= 1:

    m_t = β1 m_{t-1} + (1 - β1) g_t
    v_t = β2 v_{t-1} + (1 - β2) g_t²
    m̂_t = m_t / (1 - β1^t)
    v̂_t = v_t / (1 - β2^t)
    ρ_∞ = 2 / (1 - β2) - 1
    ρ_t = ρ_∞ - 2 t β2^t / (1 - β2^t)
    r_t = √[ (ρ_t - 4)(ρ_t - 2) ρ_∞ / ((ρ_∞ - 4)(ρ_∞ - 2) ρ_t) ]          (only when ρ_t > 4)
    a_t = r_t m̂_t / (√v̂_t + ε)   if ρ_t > 4
          m̂_t / (√v̂_t + ε)       elif force_adaptive_momentum
          m̂_t                     otherwise
    u_t = a_t + λ θ_{t-1}
    τ_t = φ(‖θ_{t-1}‖) / ‖u_t‖                    (τ_t = 1 if either norm is 0)
    θ_t = θ_{t-1} - α τ_t u_t

φ clamps into scale_clip, (0, 10) when None. With λ = 0, r_t cancels inside τ_t u_t (a per-tensor scalar).

symbol  argument             symbol  argument
α       lr                   ε       eps
β1, β2  betas                λ       weight_decay
m, v    State.m, State.v     t       State.t
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays, norm, phi, trust
from .lamb import DEFAULT_CLIP


class State(NamedTuple):
    m: Arrays
    v: Arrays
    t: int


def init(params: Arrays, **hp) -> State:
    zeros = [np.zeros_like(p, dtype=np.float64) for p in params]
    return State(m=zeros, v=[z.copy() for z in zeros], t=0)


def step(
    params,
    grads,
    state: State,
    *,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    force_adaptive_momentum=False,
    scale_clip=None,
) -> tuple[Arrays, State]:
    (beta1, beta2), clip_ = betas, DEFAULT_CLIP if scale_clip is None else scale_clip
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    new_p, new_m, new_v = [], [], []
    for theta, g, m, v in zip(params, grads, state.m, state.v):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        if rho_t > 4:
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            a = r * m_hat / (np.sqrt(v_hat) + eps)
        elif force_adaptive_momentum:
            a = m_hat / (np.sqrt(v_hat) + eps)
        else:
            a = m_hat
        u = a + weight_decay * theta
        tau = trust(phi(norm(theta), clip_), norm(u))
        new_p.append(theta - lr * tau * u)
        new_m.append(m)
        new_v.append(v)
    return new_p, State(m=new_m, v=new_v, t=t)
