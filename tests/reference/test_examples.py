"""Worked examples whose expected values come from outside our code: by hand (shown), or from the authors'
official code and holocron 0.3.0 as recorded in ../shared/spec/errata-notes.md (each source named).

Each runs two or more steps unless the point is the first step, and where holocron 0.3.0 differs its value is
asserted *not* to be reached, so the test pins our choice in docs/errata.md.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_allclose

from reference import RULES

TOL = dict(rtol=1e-7, atol=1e-8)  # the expected values are printed to 8-9 significant digits


def run(name, theta0, grads, **hp):
    mod = RULES[name].module
    params = [np.array(theta0, dtype=float)]
    state = mod.init(params, **hp)
    out = []
    for g in grads:
        params, state = mod.step(params, [np.array(g, dtype=float)], state, **hp)
        out.append(params[0])
    return out, state


# ---- LARS ------------------------------------------------------------------------------------------------
def test_lars_momentum_keeps_the_local_lr_inside_the_buffer():
    # by hand: ‖θ0‖ = 5, ‖g1‖ = 1 → γ1 = 5, v1 = (3, 4), θ1 = (2.7, 3.6);
    # ‖θ1‖ = 4.5, ‖g2‖ = √0.29 → γ2 = 8.35631..., v2 = 0.9 v1 + γ2 g2, θ2 = θ1 - 0.1 v2
    th, _ = run("lars", [3, 4], [[0.6, 0.8], [0.5, -0.2]], lr=0.1, momentum=0.9)
    assert_allclose(th[0], [2.7, 3.6], **TOL)
    gamma2 = 4.5 / math.sqrt(0.29)
    assert_allclose(th[1], [2.7 - 0.1 * (2.7 + 0.5 * gamma2), 3.6 - 0.1 * (3.6 - 0.2 * gamma2)], **TOL)
    assert_allclose(th[1], [2.01218549, 3.40712580], **TOL)  # errata-notes LARS-T1, paper placement
    assert not np.allclose(th[1], [1.83094582, 3.16547291], atol=1e-3)  # holocron 0.3.0 (γ outside)


def test_lars_scale_clip_is_applied_and_zero_weights_still_move():
    th, _ = run("lars", [3, 4], [[0.6, 0.8]], lr=0.1, scale_clip=(0.0, 1.0))
    assert_allclose(th[0], [3 - 0.1 * 1.0 * 0.6, 4 - 0.1 * 1.0 * 0.8], **TOL)  # γ = φ(5)/1 = 1
    th, _ = run("lars", [0, 0], [[0.6, 0.8]], lr=0.1)
    assert_allclose(th[0], [-0.06, -0.08], **TOL)  # γ := 1 for a zero weight


def test_lars_dampening_starts_at_step_two_and_nesterov_adds_the_current_step():
    # momentum 0.5, dampening 0.5, λ 0, θ0 = (3, 4), g ≡ (0.6, 0.8): γ1 = 5, θ1 = (2.7, 3.6)
    # γ2 = 4.5, v2 = 0.5 (3, 4) + 0.5 * 4.5 (0.6, 0.8) = (2.85, 3.8), θ2 = θ1 - 0.1 v2
    th, _ = run("lars", [3, 4], [[0.6, 0.8]] * 2, lr=0.1, momentum=0.5, dampening=0.5)
    assert_allclose(th[1], [2.7 - 0.285, 3.6 - 0.38], **TOL)
    # nesterov: s1 = γ1 d1 + m v1 = (3, 4) + 0.5 (3, 4) → θ1 = θ0 - 0.1 * 1.5 * (3, 4)
    th, _ = run("lars", [3, 4], [[0.6, 0.8]], lr=0.1, momentum=0.5, nesterov=True)
    assert_allclose(th[0], [3 - 0.45, 4 - 0.6], **TOL)


def test_lars_dampening_without_momentum_never_scales_the_step():
    # torch SGD keeps no buffer when momentum = 0, so dampening does not enter (errata row 21): with δ = 1 the
    # second step still moves, by lr γ2 d2. θ0 = (3, 4), g ≡ (0.6, 0.8): γ1 = 5, θ1 = (2.7, 3.6), γ2 = 4.5
    th, state = run("lars", [3, 4], [[0.6, 0.8]] * 2, lr=0.1, dampening=1.0)
    assert_allclose(th[1], [2.7 - 0.1 * 4.5 * 0.6, 3.6 - 0.1 * 4.5 * 0.8], **TOL)
    assert_allclose(state.v[0], [4.5 * 0.6, 4.5 * 0.8], **TOL)
    assert not np.allclose(th[1], th[0])  # the defect: (1 - δ) from step 2 froze the weights


def test_lars_with_unit_trust_ratio_is_torch_sgd_for_every_momentum_and_dampening():
    # scale_clip = (1, 1) and unit-norm gradients make γ_t = 1: LARS is then SGD, and torch.optim.SGD's own
    # conventions (dampening from step 2, none without momentum, nesterov) are the expected values
    import torch

    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4) for _ in range(4)]
    grads = [g / np.linalg.norm(g) for g in grads]
    for momentum, dampening, nesterov in [
        (0.0, 0.0, False),
        (0.0, 1.0, False),
        (0.0, 0.7, False),
        (0.5, 0.7, False),
        (0.9, 0.0, True),
    ]:
        hp = dict(lr=0.1, momentum=momentum, dampening=dampening, nesterov=nesterov)
        th, _ = run("lars", [3, 4, 0, 1], grads, scale_clip=(1.0, 1.0), **hp)
        p = torch.tensor([3.0, 4, 0, 1], dtype=torch.float64, requires_grad=True)
        sgd = torch.optim.SGD([p], **hp)
        for t, g in enumerate(grads):
            p.grad = torch.tensor(g)
            sgd.step()
            assert_allclose(th[t], p.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=str(hp))


# ---- LAMB ------------------------------------------------------------------------------------------------
def test_lamb_bias_corrected_trust_ratio_with_weight_decay():
    # by hand, step 1: m̂ = g, v̂ = g², r ≈ sign(g) = (1, -1, 1); u = r + 0.1 θ0 = (1.1, -0.8, 0.9)
    # τ = ‖θ0‖ / ‖u‖ = √6 / √2.66; θ1 = θ0 - 0.1 τ u
    th, _ = run("lamb", [1, 2, -1], [[0.1, -0.2, 0.05]], lr=0.1, weight_decay=0.1)
    tau = math.sqrt(6) / math.sqrt(2.66)
    assert_allclose(th[0], np.array([1, 2, -1]) - 0.1 * tau * np.array([1.1, -0.8, 0.9]), rtol=1e-6)
    assert_allclose(th[0], [0.83479336, 2.12015029, -1.13516905], **TOL)  # errata-notes LAMB-T1 (paper)
    assert not np.allclose(th[0], [0.85108528, 2.13522067, -1.13978475], atol=1e-3)  # holocron: no bias corr.


def test_lamb_zero_weight_takes_an_lr_sized_first_step():
    th, _ = run("lamb", [0, 0], [[0.6, 0.8], [0.6, 0.8]], lr=0.1)
    assert_allclose(th[0], [-0.1, -0.1], rtol=1e-6)  # τ := 1, r = g/|g| (holocron: -0.3162)
    assert np.all(np.isfinite(th[1])) and np.all(th[1] < th[0])


# ---- RaLars ----------------------------------------------------------------------------------------------
def test_ralars_rectifies_from_step_five_under_rho_greater_than_four():
    th, _ = run("ralars", [1, 1], [[1.0, 0.01]] * 5, lr=0.1)
    assert_allclose(th[4], [0.40871731, 0.91654493], **TOL)  # errata-notes RaL-T1, "> 4" (holocron)
    assert not np.allclose(th[4], [0.37627939, 0.99376279], atol=1e-3)  # the official-code ">= 5"


def test_ralars_first_steps_follow_sgd_momentum_direction():
    # ρ_1 = 1 <= 4: a_1 = m̂_1 = g; u = g; τ = ‖θ‖/‖g‖; θ1 = θ0 - 0.1 ‖θ0‖ g/‖g‖
    th, _ = run("ralars", [3, 4], [[0.0, 2.0]], lr=0.1)
    assert_allclose(th[0], [3, 4 - 0.5], **TOL)


# ---- TAdam -----------------------------------------------------------------------------------------------
def test_tadam_three_steps_match_the_authors_rule():
    th, _ = run("tadam", [1, -1, 0.5], [[0.1, 0.2, -0.3], [0.3, -0.2, 0.1], [0.2, 0.1, 0.0]], lr=0.1)
    assert_allclose(th[0] - [1, -1, 0.5], [-4.7619e-8, -4.7619e-8, 4.7619e-8], rtol=1e-4)  # errata TAdam-T1
    assert_allclose(th[2], [0.99936461, -1.00026939, 0.49996766], **TOL)  # holocron = paper here


def test_tadam_first_step_weight_by_hand():
    # v_0 = 0, m_0 = 0: Σ g²/ε = 0.14/1e-8; w_1 = (3 + 3)/(3 + 1.4e7); W_0 = 9; m_1 = w_1/(9 + w_1) g
    g = np.array([0.1, 0.2, -0.3])
    _, st = run("tadam", [1, -1, 0.5], [g], lr=0.1)
    w1 = 6 / (3 + 0.14 / 1e-8)
    assert_allclose(st.m[0], w1 / (9 + w1) * g, rtol=1e-12)
    assert_allclose(st.W[0], 8 / 9 * 9 + w1, rtol=1e-12)
    assert_allclose(st.v[0], 0.001 * g**2, rtol=1e-12)


def test_tadam_infinite_dof_is_adam():
    gs = [[0.1, 0.2, -0.3], [0.3, -0.2, 0.1], [0.2, 0.1, 0.0]]
    _, st = run("tadam", [1, -1, 0.5], gs, lr=0.1, dof=math.inf)
    m = np.zeros(3)
    for g in gs:
        m = 0.9 * m + 0.1 * np.array(g)
    assert_allclose(st.m[0], m, rtol=1e-12)  # holocron 0.3.0: NaN


# ---- AdaBelief -------------------------------------------------------------------------------------------
def test_adabelief_keeps_eps_inside_s():
    th, st = run("adabelief", [1, -1], [[1e-3, -2e-3]], lr=0.1)
    assert_allclose(th[0], [0.96958514, -0.94503518], **TOL)  # errata AdaB-T1 (paper/official)
    assert not np.allclose(th[0], [0.88889012, -0.88888951], atol=1e-3)  # holocron 0.3.0 (no ε in s)
    # by hand: m1 = 0.1 g, s1 = 0.001 (0.9 g)² + 1e-8
    g = np.array([1e-3, -2e-3])
    assert_allclose(st.s[0], 0.001 * (0.9 * g) ** 2 + 1e-8, rtol=1e-12)


def test_adabelief_two_steps_by_hand():
    g1, g2, th0 = np.array([0.5, -1.0]), np.array([0.2, 0.3]), np.array([1.0, 2.0])
    th, st = run("adabelief", th0, [g1, g2], lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    gt1 = g1 + 0.1 * th0
    m1 = 0.2 * gt1
    s1 = 0.1 * (gt1 - m1) ** 2 + 1e-6
    th1 = th0 - 0.01 * (m1 / 0.2) / (np.sqrt(s1 / 0.1) + 1e-6)
    gt2 = g2 + 0.1 * th1
    m2 = 0.8 * m1 + 0.2 * gt2
    s2 = 0.9 * s1 + 0.1 * (gt2 - m2) ** 2 + 1e-6
    th2 = th1 - 0.01 * (m2 / (1 - 0.64)) / (np.sqrt(s2 / (1 - 0.81)) + 1e-6)
    assert_allclose(th[1], th2, rtol=1e-13)
    assert_allclose(st.s[0], s2, rtol=1e-13)


# ---- AdamP -----------------------------------------------------------------------------------------------
def test_adamp_leaves_scalars_unprojected():
    th, _ = run("adamp", 2.0, [-1.0] * 3, lr=0.1)
    assert_allclose(th[2], 2.3, **TOL)  # errata AdamP-T1 (official); holocron: frozen at 2.000000003


def test_adamp_uses_the_absolute_cosine():
    G = [[-0.5, 0.2, 0.1], [0.3, -0.5, 0.2]]
    th, _ = run("adamp", [[1, 0, 0], [0, 1, 0]], [G], lr=0.1)
    assert_allclose(np.diag(th[0]), [1.099999998] * 2, **TOL)  # errata AdamP-T2 (official, no projection)


def test_adamp_projects_an_orthogonal_gradient_and_scales_weight_decay():
    G = np.array([[0, 0.2, 0.1], [0.3, 0, 0.2]])
    th0 = np.array([[1.0, 0, 0], [0, 1, 0]])
    th, _ = run("adamp", th0, [G], lr=0.1, weight_decay=0.5)
    # by hand: p = m̂/(√v̂+ε) ≈ sign(G); channel view: cos = 0 < 0.1/√3 → project rows onto θ's tangent space
    p = G / (np.abs(G) + 1e-8)
    n = th0 / (1 + 1e-8)
    q = p - np.sum(n * p, axis=1, keepdims=True) * n
    assert_allclose(th[0], th0 * (1 - 0.1 * 0.5 * 0.1) - 0.1 * q, rtol=1e-7, atol=1e-12)


# ---- Adan ------------------------------------------------------------------------------------------------
def test_adan_tracks_the_previous_gradient():
    gs = [[0.3, -0.1, 0.2], [0.1, 0.4, -0.3], [-0.2, 0.2, 0.1]]
    th, st = run("adan", [1, -2, 0.5], gs, lr=0.01)
    assert_allclose(th[2], [0.98827432, -2.00149286, 0.49563495], **TOL)  # errata Adan-T2 (official)
    assert not np.allclose(th[2], [0.97844982, -2.00182966, 0.49227609], atol=1e-4)  # holocron (g_prev = 0)
    assert_allclose(st.g_prev[0], gs[2])


def test_adan_weight_decay_is_proximal_only():
    th, _ = run("adan", [1, -2, 0.5], [[0, 0, 0]], lr=0.1, weight_decay=0.5)
    assert_allclose(th[0], np.array([1, -2, 0.5]) / 1.05, **TOL)  # errata Adan-T3; holocron decays twice


def test_adan_first_step_by_hand():
    # Δ1 = 0: m̂ = g, v̂ = 0, n̂ = g² → θ1 = θ0 - lr g/(|g| + ε)
    th, _ = run("adan", [1, -2, 0.5], [[0.3, -0.1, 0.2], [0.3, -0.1, 0.2]], lr=0.01)
    assert_allclose(th[0], [0.99, -1.99, 0.49], rtol=1e-7)


# ---- AdEMAMix ---------------------------------------------------------------------------------------------
def test_ademamix_second_moment_and_decoupled_weight_decay():
    gs = [[0.1, 0.2, -0.3], [0.3, -0.2, 0.1]]
    th, _ = run("ademamix", [1, -1, 0.5], gs, lr=0.1, alpha=5.0)
    assert_allclose(th[1], [0.80808248, -1.09478683, 0.64011658], **TOL)  # errata AdE-T1, λ = 0
    th, _ = run("ademamix", [1, -1, 0.5], gs, lr=0.1, alpha=5.0, weight_decay=0.5)
    assert_allclose(th[1], [0.71558498, -0.99228433, 0.58636408], **TOL)  # official, decoupled
    assert not np.allclose(th[1], [0.79988643, -0.80421746, 0.53445536], atol=1e-3)  # holocron: L2


def test_ademamix_warmups():
    from reference.ademamix import alpha_t, beta3_t

    assert_allclose(beta3_t(1, 0.9, 0.9999, 100), 0.99090016, rtol=1e-8)  # errata AdE-T2, closed form
    assert alpha_t(25, 5.0, 100) == 1.25 and alpha_t(100, 5.0, 100) == 5.0
    assert beta3_t(100, 0.9, 0.9999, 100) == 0.9999
    gs = [[0.1, 0.2], [0.3, -0.2], [0.2, 0.1]]
    th, _ = run("ademamix", [1, -1], gs, lr=0.1, alpha_warmup=100, beta3_warmup=100)
    # official code puts 1e-8 inside its logs, which moves β3_t by ~1e-9 and θ3 by ~1e-8: hence rtol 1e-6
    assert_allclose(th[2], [0.71375626, -1.11239981], rtol=1e-6)
    th, _ = run("ademamix", [1, -1], gs, lr=0.1)
    assert_allclose(th[2], [0.71383437, -1.11228825], **TOL)  # no warm-up (= holocron 0.3.0)
