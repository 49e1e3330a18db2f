# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # AdamP: Adam without the norm growth of scale-invariant weights
#
# AdamP (Heo et al., 2021, [arXiv:2006.08217](https://arxiv.org/abs/2006.08217), Algorithm 2, as in the official
# clovaai/AdamP code). A weight followed by a normalisation layer is *scale-invariant*: the loss depends only on
# $\theta / \lVert\theta\rVert$, its gradient is orthogonal to $\theta$, and every step of a momentum method
# then *increases* $\lVert\theta\rVert$, which shrinks the effective step size $\alpha / \lVert\theta\rVert$.
# AdamP detects such weights (gradient nearly orthogonal to the weight) and removes the radial component of
# the update, so the norm stays put.
#
# For each parameter tensor, $t \ge 1$, $m_0 = v_0 = 0$:
#
# $$
# \begin{aligned}
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
# v^{\max}_t &= \max(v^{\max}_{t-1}, v_t) \qquad \text{(amsgrad only; holocron's extension)} \\
# D_t &= \frac{\sqrt{v_t}}{\sqrt{1 - \beta_2^t}} + \epsilon \qquad (\sqrt{v^{\max}_t} \text{ with amsgrad}) \\
# p_t &= m_t / D_t \qquad \text{(nesterov: } (\beta_1 m_t + (1 - \beta_1) g_t) / D_t) \\
# &\text{for a tensor with} \ge 2 \text{ dims, try two views in turn: (a) rows = output channels,} \\
# &\text{(b) the whole tensor as one row:} \\
# &\quad c_i = \lvert\cos(g_i, \theta_{t-1,i})\rvert \text{ per row } i; \text{ if } \max_i c_i <
#   \delta / \sqrt{\text{row length}}: \\
# &\quad\quad n_i = \frac{\theta_{t-1,i}}{\lVert\theta_{t-1,i}\rVert + \epsilon}, \quad
#   q_i = p_i - (n_i \cdot p_i)\, n_i, \quad r = \text{wd\_ratio}; \text{ stop} \\
# &\text{otherwise (no view projected, or} < 2 \text{ dims): } q_t = p_t, \; r = 1 \\
# \theta_t &= \theta_{t-1}\, (1 - \alpha \lambda r) - \frac{\alpha}{1 - \beta_1^t}\, q_t
# \end{aligned}
# $$
#
# with $\cos(x, y) = x \cdot y / (\max(\lVert x\rVert, \epsilon) \max(\lVert y\rVert, \epsilon))$.
#
# **Where this differs from the spec or holocron 0.3.0** ([docs/errata.md](../docs/errata.md)): row 25,
# $m_0 = 0$ and the official $D_t$ (the spec's $m_0 = g_0$ and $\sqrt{\hat n + \epsilon}$ are typos); row 26,
# the *absolute* cosine, per output channel first, then the whole tensor (holocron: signed, whole tensor only);
# row 27, only tensors with $\ge 2$ dims are projected; row 28, decoupled weight decay scaled by `wd_ratio` on
# projected tensors, and the official `nesterov`; row 29, `amsgrad` kept as an extension.

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from holocron_torch import optim
from holocron_torch.study import PROBLEMS, adam, agreement, describe, random_grads, run, trace, trajectories
from reference import RULES
from reference.adamp import cosine, views

rule = RULES["adamp"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## One step, symbol by symbol
#
# A 2×3 weight whose gradient is orthogonal to it (row by row): every $\lvert\cos\rvert$ is below
# $\delta/\sqrt 3 \approx 0.058$, so view (a) projects. `m` is $m_t$, `v` is $v_t$,
# `t` is $t$. The step $\theta_1 - \theta_0$ is then orthogonal to each row of $\theta_0$: to first order the
# norm does not change.

# %%
theta0 = np.array([[1.0, -2.0, 0.5], [0.3, 0.4, -1.0]])
g = np.array([[2.0, 1.0, 0.0], [1.0, 0.5, 0.5]])  # each row orthogonal to the same row of theta0
print("|cos(g_i, θ_i)| per row (reference.adamp.cosine):", np.abs(cosine(g, theta0, 1e-8)))
new_params, state = trace(rule.module, [theta0], [[g]], {"m": "m_t", "v": "v_t", "t": "t"}, lr=0.1)
step = new_params[0] - theta0
print("row-wise (θ_1 - θ_0) · θ_0 =", np.sum(step * theta0, axis=1))
print("‖θ_0‖ =", np.linalg.norm(theta0), " ‖θ_1‖ =", np.linalg.norm(new_params[0]))

# %% [markdown]
# ## Trajectories against Adam
#
# The test functions' $\theta$ is a 2-element vector, which AdamP never projects ([row 27](../docs/errata.md)):
# on it AdamP *is* Adam, and its path lies on Adam's (dashed). AdamP's difference shows on weight matrices,
# below.

# %%
STEPS, LR = 400, 0.05


fig = trajectories(
    lambda problem: {
        f"AdamP (α = {LR})": run(rule.module, problem, STEPS, lr=LR),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    f"AdamP against Adam, {STEPS} steps",
    styles={f"Adam (α = {LR})": {"ls": "--", "color": "k", "lw": 1}},
)
plt.show()
for problem in PROBLEMS:
    gap = np.max(np.abs(run(rule.module, problem, STEPS, lr=LR) - adam(problem, STEPS, LR)))
    print(f"{problem.name}: max |AdamP - Adam| over the path = {gap:.2e}")

# %% [markdown]
# ## The projection on a scale-invariant weight
#
# A 4×8 weight $W$ whose loss only sees its direction: $f(W) = \tfrac12 \lVert W / \lVert W\rVert - T\rVert^2$
# for a unit-norm target $T$ (the situation of a weight followed by batch or layer normalisation). The gradient is
# computed by autograd. Adam's steps are orthogonal to the gradient's direction only on average: each one adds to
# $\lVert W\rVert$, and the effective step on the sphere, $\alpha/\lVert W \rVert$, shrinks. AdamP tests
# the rows first: they are not scale-invariant one by one, and their $\lvert\cos\rvert$ exceeds
# $\delta/\sqrt 8 \approx 0.035$. The whole tensor is: $\lvert\cos(g, W)\rvert \approx 10^{-16} <
# \delta/\sqrt{32} \approx 0.018$, so view (b) projects, and $\lVert W\rVert$ stays nearly constant (it
# grows only at second order, in the first steps). The decoupled weight decay, scaled by `wd_ratio` on a
# projected tensor, then shrinks it slowly.

# %%
rng = np.random.default_rng(0)
target = rng.standard_normal((4, 8))
target /= np.linalg.norm(target)
W0 = 0.5 * rng.standard_normal((4, 8)) / np.sqrt(32)  # ‖W0‖ ≈ 0.5


def loss(W):
    """f(W) = ½ ‖W/‖W‖ - T‖²: invariant to the scale of W."""
    W = torch.as_tensor(W)
    return 0.5 * torch.sum((W / torch.linalg.norm(W) - torch.as_tensor(target)) ** 2)


def grad(W):
    w = torch.tensor(W, requires_grad=True)
    loss(w).backward()
    return w.grad.numpy()


g0 = grad(W0)
for name, (gv, wv) in zip(("per output channel", "whole tensor"), zip(views(g0), views(W0))):
    print(f"view {name:<19}: max |cos(g, W)| = {np.max(np.abs(cosine(gv, wv, 1e-8))):.2e}")

STEPS, LR = 200, 0.02
runs = {}
for label, hp in (("AdamP", {}), ("AdamP, λ = 0.1 (× wd_ratio)", {"weight_decay": 0.1})):
    params, state, path = [W0.copy()], rule.module.init([W0]), [W0.copy()]
    for _ in range(STEPS):
        params, state = rule.module.step(params, [grad(params[0])], state, lr=LR, **hp)
        path.append(params[0])
    runs[label] = path
w = torch.tensor(W0, requires_grad=True)
opt, path = torch.optim.Adam([w], lr=LR), [W0.copy()]
for _ in range(STEPS):
    opt.zero_grad()
    loss(w).backward()
    opt.step()
    path.append(w.detach().numpy().copy())
runs["Adam"] = path

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
for label, path in runs.items():
    ax1.plot([np.linalg.norm(W) for W in path], label=label)
    ax2.semilogy([float(loss(W)) for W in path], label=label)
ax1.set(xlabel="step $t$", ylabel=r"$\|W_t\|$", title="weight norm")
ax2.set(xlabel="step $t$", ylabel=r"$f(W_t)$", title="loss (scale-invariant)")
ax1.legend()
ax2.legend()
ax2.grid(True, alpha=0.3)
plt.show()

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.AdamP` in float64 against `reference.adamp` on a vector and a 2×3 matrix. The matrix's
# gradients are made orthogonal to its initial value, so the projection and `wd_ratio` take part; then with
# `nesterov` and `amsgrad`.

# %%
params, grads = random_grads([(3,), (2, 3)], steps=6, seed=2)
W = params[1]
grads = [[gv, gm - np.sum(gm * W) / np.sum(W * W) * W] for gv, gm in grads]
hp = dict(lr=0.05, weight_decay=0.1, wd_ratio=0.2)
agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
hp = dict(lr=0.05, nesterov=True, amsgrad=True, delta=0.5)
agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
