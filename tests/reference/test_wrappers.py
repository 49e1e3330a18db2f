"""Lookahead and Scout in the reference, around a plain SGD base rule written here (θ ← θ - lr g)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from holocron_torch.testing.strategies import tensor_lists
from reference import RULES
from reference import scout as scout_mod

SGD = SimpleNamespace(
    init=lambda params, **hp: None,
    step=lambda params, grads, state, lr=0.1: ([p - lr * g for p, g in zip(params, grads)], None),
)


def trajectory(name, theta0, grads, **hp):
    mod = RULES[name].module
    params = [np.array(theta0, dtype=float)]
    state = mod.init(params, SGD)
    out = []
    for g in grads:
        params, state = mod.step(params, [np.array(g, dtype=float)], state, SGD, **hp)
        out.append(params[0].copy())
    return out, state


def test_lookahead_slow_weights_start_at_theta0():
    th, _ = trajectory("lookahead", 1.0, [1.0] * 4, sync_rate=0.5, sync_period=2)
    assert_allclose(np.array(th), [0.9, 0.9, 0.8, 0.8])  # errata LA-T1 (paper/official)


@given(st.floats(0.05, 1.0), st.integers(1, 5), tensor_lists(), st.integers(0, 2**31 - 1))
def test_lookahead_sync_is_the_stated_interpolation(alpha, k, params, seed):
    rng = np.random.default_rng(seed)
    grads = [[rng.normal(size=p.shape) for p in params] for _ in range(k)]
    mod = RULES["lookahead"].module
    state, cur = mod.init(params, SGD), params
    for g in grads:
        cur, state = mod.step(cur, g, state, SGD, sync_rate=alpha, sync_period=k)
    fast = [p - 0.1 * sum(g[i] for g in grads) for i, p in enumerate(params)]
    for got, p0, f in zip(cur, params, fast):
        assert_allclose(got, p0 + alpha * (f - p0), rtol=1e-12, atol=1e-12)
    assert all(np.array_equal(a, b) for a, b in zip(state.phi, cur))


def test_scout_constant_updates_sync_like_lookahead_instead_of_resetting():
    th, _ = trajectory("scout", [1, 2], [[1, 1]] * 3, sync_rate=0.5, sync_period=3)
    assert_allclose(th[0], [0.9, 1.9])
    assert_allclose(th[2], [0.85, 1.85])  # errata Scout-T1: holocron resets to (1.0, 2.0)


def test_scout_one_outlier_step_raises_the_sync_rate():
    # one element, differences (0.1, 0, 0, 0): μ = 0.025, s = √(0.0075/3) = 0.05, M = 0.075
    # C = s/M = 2/3, ρ = max(1 - 2/3, 0.1) = 1/3
    grads = [[-1.0], [0.0], [0.0], [0.0]]
    th, _ = trajectory("scout", [0.0], grads, sync_rate=0.1, sync_period=4)
    assert_allclose(th[3], [0.1 / 3], rtol=1e-12)


def test_scout_ignores_a_frozen_tensor_in_the_coherence():
    frozen = [np.array([5.0]) for _ in range(5)]
    moving = [np.array([0.0])] + [np.array([0.1])] * 4  # differences (0.1, 0, 0, 0): C = 2/3 as above
    assert_allclose(scout_mod.sync_rate_for([moving, frozen], 0.1), 1 / 3, rtol=1e-12)
    assert scout_mod.sync_rate_for([frozen], 0.25) == 0.25
