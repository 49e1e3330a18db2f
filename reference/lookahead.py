r"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019, arXiv:1907.08610, Algorithm 1), around any base rule.

    φ_0 = θ_0                                   (slow weights: a copy of the initial parameters)
    each step:  θ ← base step(θ, g);  n ← n + 1
    if n mod k = 0:  φ ← φ + α (θ - φ);  θ ← φ

The base rule's own state (momenta, ...) is left as it is at a sync.

symbol  argument        symbol  argument
α       sync_rate       k       sync_period
φ       State.phi       n       State.n;  the base rule's state is State.base
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

from ._common import Arrays, as_arrays


class State(NamedTuple):
    base: Any
    phi: Arrays
    n: int


def init(params: Arrays, base: ModuleType, base_hyper: dict | None = None, **hp) -> State:
    return State(base=base.init(as_arrays(params), **(base_hyper or {})), phi=as_arrays(params), n=0)


def step(
    params,
    grads,
    state: State,
    base: ModuleType,
    base_hyper: dict | None = None,
    *,
    sync_rate=0.5,
    sync_period=6,
) -> tuple[Arrays, State]:
    theta, base_state = base.step(params, grads, state.base, **(base_hyper or {}))
    n = state.n + 1
    if n % sync_period != 0:
        return theta, State(base=base_state, phi=state.phi, n=n)
    phi = [p + sync_rate * (th - p) for p, th in zip(state.phi, theta)]
    return as_arrays(phi), State(base=base_state, phi=phi, n=n)
