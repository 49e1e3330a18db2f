r"""AdEMAMix: a mixture of a fast and a slow EMA (Pagliardini, Ablin & Grangier, 2024, arXiv:2409.03050,
Algorithm 1, as in apple/ml-ademamix's PyTorch code). Per element, for t >= 1:

    α_t  = α · t / T_α   if t < T_α  else α                                    (alpha_warmup = T_α)
    β3_t = exp( ln β1 · ln β3 / ((1 - t/T_β3) ln β3 + (t/T_β3) ln β1) )   if t < T_β3  else β3
                                          (linear in half-life from β1 to β3; beta3_warmup = T_β3)
    m1_t = β1 m1_{t-1} + (1 - β1) g_t
    m2_t = β3_t m2_{t-1} + (1 - β3_t) g_t                                      (slow EMA, no bias correction)
    ν_t  = β2 ν_{t-1} + (1 - β2) g_t²
    m̂1_t = m1_t / (1 - β1^t)
    ν̂_t  = ν_t / (1 - β2^t)
    θ_t  = θ_{t-1} - η [ (m̂1_t + α_t m2_t) / (√ν̂_t + ε) + λ θ_{t-1} ]          (decoupled weight decay)

m1_0 = m2_0 = ν_0 = 0; without warm-ups (None) α_t = α and β3_t = β3. The spec's s_t (an AdaBelief copy,
(g - m)² + ε) is the paper's ν_t = EMA of g², and α mixes the slow EMA in; it is not a decay rate. There is
no AMSGrad variant (docs/errata.md).

symbol      argument                   symbol  argument
η           lr                         ε       eps
β1, β2, β3  betas                      λ       weight_decay
α           alpha                      T_α, T_β3  alpha_warmup, beta3_warmup
m1, m2, ν   State.m1, State.m2, State.nu   t   State.t
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays


class State(NamedTuple):
    m1: Arrays
    m2: Arrays
    nu: Arrays
    t: int


def init(params: Arrays, **hp) -> State:
    def zeros():
        return [np.zeros_like(p, dtype=np.float64) for p in params]

    return State(m1=zeros(), m2=zeros(), nu=zeros(), t=0)


def alpha_t(t: int, alpha: float, alpha_warmup: int | None) -> float:
    """α_t: linear warm-up from 0 to α over T_α steps."""
    return alpha * t / alpha_warmup if alpha_warmup is not None and t < alpha_warmup else alpha


def beta3_t(t: int, beta1: float, beta3: float, beta3_warmup: int | None) -> float:
    """β3_t: from β1 to β3, linear in the half-life ln(0.5)/ln(β), over T_β3 steps."""
    if beta3_warmup is None or t >= beta3_warmup:
        return beta3
    a = t / beta3_warmup
    return math.exp(math.log(beta1) * math.log(beta3) / ((1 - a) * math.log(beta3) + a * math.log(beta1)))


def step(
    params,
    grads,
    state: State,
    *,
    lr=1e-3,
    betas=(0.9, 0.999, 0.9999),
    alpha=5.0,
    eps=1e-8,
    weight_decay=0.0,
    alpha_warmup=None,
    beta3_warmup=None,
) -> tuple[Arrays, State]:
    beta1, beta2, beta3 = betas
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    a_t, b3_t = alpha_t(t, alpha, alpha_warmup), beta3_t(t, beta1, beta3, beta3_warmup)
    new_p, new_m1, new_m2, new_nu = [], [], [], []
    for theta, g, m1, m2, nu in zip(params, grads, state.m1, state.m2, state.nu):
        m1 = beta1 * m1 + (1 - beta1) * g
        m2 = b3_t * m2 + (1 - b3_t) * g
        nu = beta2 * nu + (1 - beta2) * g**2
        m1_hat = m1 / (1 - beta1**t)
        nu_hat = nu / (1 - beta2**t)
        new_p.append(theta - lr * ((m1_hat + a_t * m2) / (np.sqrt(nu_hat) + eps) + weight_decay * theta))
        new_m1.append(m1)
        new_m2.append(m2)
        new_nu.append(nu)
    return new_p, State(m1=new_m1, m2=new_m2, nu=new_nu, t=t)
