"""Properties that follow from the math, checked with Hypothesis over the registry's valid ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from holocron_torch.testing.strategies import arrays, hyperparameters, shapes, tensor_lists
from reference import BASE_RULES, RULES
from reference import adamp as adamp_mod

BASE = sorted(BASE_RULES)


def steps(name, params, grads_seq, hp):
    mod = RULES[name].module
    state = mod.init(params, **hp)
    for grads in grads_seq:
        params, state = mod.step(params, grads, state, **hp)
    return params, state


@pytest.mark.parametrize("name", BASE)
@given(data=st.data())
def test_inputs_are_never_mutated_and_outputs_are_finite(name, data):
    rule = RULES[name]
    hp = data.draw(hyperparameters(rule))
    params = data.draw(tensor_lists())
    grads = [data.draw(arrays(p.shape)) for p in params]
    before = [p.copy() for p in params], [g.copy() for g in grads]
    state = rule.module.init(params, **hp)
    new, state = rule.module.step(params, grads, state, **hp)
    new, state = rule.module.step(new, grads, state, **hp)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], params))
    assert all(np.array_equal(a, b) for a, b in zip(before[1], grads))
    assert all(n.shape == p.shape and np.all(np.isfinite(n)) for n, p in zip(new, params))
    assert state.t == 2
    for field in rule.state_fields(hp):
        assert len(getattr(state, field)) == len(params)


@pytest.mark.parametrize("name", ["adan", "adamp", "ademamix"])
@given(shape=shapes(), data=st.data())
def test_adam_family_first_step_moves_each_coordinate_by_lr(name, shape, data):
    g = data.draw(arrays(shape).filter(lambda a: np.all(np.abs(a) > 1e-3)))
    theta = np.full(shape, 1.0)  # with a ≥ 2-d AdamP tensor, this θ is far from orthogonal to most g
    hp = dict(lr=0.01, **({"alpha": 0.0} if name == "ademamix" else {}))
    if name == "adamp":
        assume(theta.ndim < 2)  # AdamP's projection may legitimately change the step for ≥ 2-d tensors
    new, _ = steps(name, [theta], [[g]], hp)
    assert_allclose(np.abs(new[0] - theta), 0.01, rtol=1e-4)
    assert np.all(np.sign(theta - new[0]) == np.sign(g))


@pytest.mark.parametrize("name", ["lars", "lamb", "ralars"])
@given(data=st.data(), scale=st.floats(1e-3, 1e3))
def test_trust_ratio_updates_are_invariant_to_rescaling_the_gradient(name, data, scale):
    params = data.draw(tensor_lists())
    grads = [data.draw(arrays(p.shape)) for p in params]
    grads = [np.where(np.abs(g) < 1e-6, 0.0, g) for g in grads]  # so that ε = 1e-300 is negligible
    assume(all(np.any(np.abs(g) > 1e-2) for g in grads))
    assume(all(np.any(p != 0) for p in params))  # a zero weight takes the τ := 1 fallback, not a ratio
    hp = dict(lr=0.05, eps=1e-300) if name != "lars" else dict(lr=0.05)
    a, _ = steps(name, params, [grads], hp)
    b, _ = steps(name, params, [[scale * g for g in grads]], hp)
    for x, y in zip(a, b):
        assert_allclose(x, y, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["lars", "lamb", "ralars"])
@given(shape=shapes(), data=st.data())
def test_zero_norm_guards_give_finite_moves(name, shape, data):
    g = data.draw(arrays(shape))
    new, _ = steps(name, [np.zeros(shape)], [[g]] * 2, dict(lr=0.1))
    assert np.all(np.isfinite(new[0]))
    if np.any(g != 0):
        assert np.any(new[0] != 0)  # a zero-initialised weight still trains
    new, _ = steps(name, [np.ones(shape)], [[np.zeros(shape)]] * 2, dict(lr=0.1))
    assert np.all(np.isfinite(new[0]))


@given(rows=st.integers(1, 4), cols=st.integers(2, 6), data=st.data())
def test_adamp_projected_update_is_orthogonal_to_the_weights(rows, cols, data):
    theta = data.draw(arrays((rows, cols)))
    p = data.draw(arrays((rows, cols)))
    assume(np.all(np.linalg.norm(theta, axis=1) > 1e-3))
    g = np.zeros_like(theta)  # cos(g, θ) = 0: always below the threshold
    q, r = adamp_mod.project(theta, g, p, delta=0.1, wd_ratio=0.25, eps=1e-8)
    assert r == 0.25
    # exact orthogonality up to the ε in n = θ/(‖θ‖ + ε): q·θ = (1 - c²) p·θ with c = ‖θ‖/(‖θ‖ + ε), so
    # |q·θ| <= 2ε‖p‖ (plus rounding)
    p_norm, t_norm = np.linalg.norm(p, axis=1), np.linalg.norm(theta, axis=1)
    assert np.all(np.abs(np.sum(q * theta, axis=1)) <= 2.001e-8 * p_norm + 1e-14 * t_norm * (p_norm + 1))


@given(data=st.data())
def test_tadam_weights_are_positive_and_bounded(data):
    hp = data.draw(hyperparameters(RULES["tadam"]))
    params = data.draw(tensor_lists())
    grads = [data.draw(arrays(p.shape)) for p in params]
    _, state = steps("tadam", params, [grads] * 3, hp)
    for W, p in zip(state.W, params):
        b1 = hp["betas"][0]
        # W_t = c W_{t-1} + w_t with 0 <= c < 1 and 0 < w_t <= (ν + d)/ν
        nu = p.size if hp["dof"] is None else hp["dof"]
        w_max = 1.0 if math.isinf(nu) else (nu + p.size) / nu
        assert 0 < W <= b1 / (1 - b1) + 3 * w_max + 1e-9
