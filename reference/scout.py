r"""Scout: holocron's Lookahead variant whose sync rate adapts to how coherent the fast steps were.
There is no paper; holocron 0.3.0's rule is the definition, except for one deliberate deviation on
degenerate elements (docs/errata.md). With k = sync_period >= 2:

    φ_0 = θ_0;  each step:  θ ← base step(θ, g);  n ← n + 1;  remember θ (H = [φ, θ_1, ..., θ_k])
    if n mod k = 0, for each tensor j:
        D   = (θ_1 - φ, θ_2 - θ_1, ..., θ_k - θ_{k-1})              (k fast steps, along time)
        μ   = mean_time(D)
        s   = std_time(D), with Bessel's correction (divide by k - 1)
        M   = max_time |D - μ|
        c_j = mean of s / M over the unsteady elements, M > STEADY · max_time |D|
                                                  (holocron: over all elements, NaN if any M = 0)
    C = mean of c_j over the tensors with at least one unsteady element
    ρ = max(1 - C, sync_rate)    (ρ = sync_rate when no tensor counts)
    φ ← φ + ρ (θ - φ);  θ ← φ;  H ← [φ]

symbol  argument        symbol  argument
α       sync_rate       k       sync_period
φ       State.phi       H       State.history (the fast weights since the last sync, φ first)
n       State.n         the base rule's state is State.base
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from ._common import Arrays, as_arrays

#: an element whose k updates vary by at most this fraction of their size is steady (no coherence to measure):
#: exactly constant updates (a frozen tensor, a zero or constant gradient under SGD) and the same up to rounding
STEADY = 1e-6


class State(NamedTuple):
    base: Any
    phi: Arrays
    history: list[Arrays]
    n: int


def init(params: Arrays, base: ModuleType, base_hyper: dict | None = None, **hp) -> State:
    phi = as_arrays(params)
    return State(base=base.init(as_arrays(params), **(base_hyper or {})), phi=phi, history=[phi], n=0)


def coherence(history: list[np.ndarray]) -> float | None:
    """c_j for one tensor: mean over its valid elements of s / M, or None if no element is valid."""
    D = np.diff(np.stack(history), axis=0)
    mu = D.mean(axis=0)
    s = D.std(axis=0, ddof=1)
    M = np.max(np.abs(D - mu), axis=0)
    valid = M > STEADY * np.max(np.abs(D), axis=0)
    return float(np.mean(s[valid] / M[valid])) if valid.any() else None


def sync_rate_for(histories: list[list[np.ndarray]], sync_rate: float) -> float:
    """ρ = max(1 - C, sync_rate), C the mean coherence of the tensors that have one."""
    cs = [c for c in (coherence(h) for h in histories) if c is not None]
    return max(1.0 - float(np.mean(cs)), sync_rate) if cs else sync_rate


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
    n, history = state.n + 1, [*state.history, theta]
    if n % sync_period != 0:
        return theta, State(base=base_state, phi=state.phi, history=history, n=n)
    rho = sync_rate_for([list(h) for h in zip(*history)], sync_rate)
    phi = [p + rho * (th - p) for p, th in zip(state.phi, theta)]
    return as_arrays(phi), State(base=base_state, phi=phi, history=[phi], n=n)
