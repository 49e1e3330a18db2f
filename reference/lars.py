r"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017, arXiv:1708.03888, Algorithm 1).

Per parameter tensor (a "layer"), for t >= 1:

    d_t = g_t + λ θ_{t-1}                                     (L2 term joins the direction)
    γ_t = φ(‖θ_{t-1}‖) / (‖g_t‖ + λ ‖θ_{t-1}‖)                 (local LR; γ_t = 1 if either side is 0)
    v_t = γ_t d_t                              if t = 1 or m = 0   (torch SGD: no dampening at t = 1, and with
    v_t = m v_{t-1} + (1 - δ) γ_t d_t          otherwise            m = 0 no buffer, so δ never scales the step)
    s_t = γ_t d_t + m v_t  if nesterov  else  v_t
    θ_t = θ_{t-1} - α s_t

With δ = 0 and a constant α this is the paper's v_t = m v_{t-1} + α γ_t (g_t + λθ_{t-1}), θ_t = θ_{t-1} - v_t.
The paper's schedule α_t = α(1 - t/T)² is left to torch LR schedulers; the paper's trust coefficient is
absorbed into α (see docs/errata.md).

symbol  argument                       symbol  argument
α       lr                             m       momentum
λ       weight_decay                   δ       dampening
φ       clamp into scale_clip          v       State.v (momentum buffer)
(None: no clamp)                       t       State.t
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import Arrays, as_arrays, norm, phi, trust


class State(NamedTuple):
    v: Arrays
    t: int


def init(params: Arrays, **hp) -> State:
    return State(v=[np.zeros_like(p, dtype=np.float64) for p in params], t=0)


def step(
    params,
    grads,
    state: State,
    *,
    lr=1e-3,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    scale_clip=None,
) -> tuple[Arrays, State]:
    params, grads, t = as_arrays(params), as_arrays(grads), state.t + 1
    new_p, new_v = [], []
    for theta, g, v in zip(params, grads, state.v):
        d = g + weight_decay * theta
        gamma = trust(phi(norm(theta), scale_clip), norm(g) + weight_decay * norm(theta))
        v = gamma * d if t == 1 or momentum == 0 else momentum * v + (1.0 - dampening) * gamma * d
        s = gamma * d + momentum * v if nesterov else v
        new_p.append(theta - lr * s)
        new_v.append(v)
    return new_p, State(v=new_v, t=t)
