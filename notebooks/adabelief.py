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
# # AdaBelief: Adam that divides by the gradient's surprise
#
# AdaBelief (Zhuang et al., 2020, [arXiv:2010.07468](https://arxiv.org/abs/2010.07468), Algorithm 2) keeps Adam's
# first moment $m_t$ but replaces the second moment of $g_t$ by that of $g_t - m_t$: the "belief" $s_t$ is how
# far the gradient falls from its own prediction. Where the gradient is predictable, $s_t$ is small and the step
# is large; where it is noisy, $s_t \approx$ its variance and the step is Adam-sized or smaller.
#
# Per element, $t \ge 1$, $m_0 = s_0 = 0$, coupled L2 weight decay as in the spec:
#
# $$
# \begin{aligned}
# \tilde g_t &= g_t + \lambda\, \theta_{t-1} \\
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, \tilde g_t \\
# s_t &= \beta_2 s_{t-1} + (1 - \beta_2)\, (\tilde g_t - m_t)^2 + \epsilon \\
# s^{\max}_t &= \max(s^{\max}_{t-1}, s_t) \qquad \text{(amsgrad only)} \\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat s_t = \frac{s_t}{1 - \beta_2^t}
#   \quad (s^{\max}_t \text{ with amsgrad}) \\
# \theta_t &= \theta_{t-1} - \alpha\, \frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}
# \end{aligned}
# $$
#
# **Where this differs from holocron 0.3.0 or the official package** ([docs/errata.md](../docs/errata.md)):
# row 30, $\epsilon$ is added to $s_t$ at every step and stays in the state (holocron 0.3.0 leaves it out); row 31,
# `foreach` and `maximize` are implemented, `capturable`/`differentiable`/`fused=True` are refused; row 32, the
# defaults are the spec's ($\epsilon = 10^{-8}$, coupled L2, no rectification), not adabelief-pytorch 0.2.1's.

# %%
import inspect
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
import torch

from holocron_torch import optim
from holocron_torch.study import adam, agreement, describe, random_grads, run, trace, trajectories, unroll, unroll_torch
from reference import RULES

rule = RULES["adabelief"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## One step, symbol by symbol
#
# `m` is $m_t$, `s` is $s_t$, `t` is $t$. After one step $m_1 = (1 - \beta_1) g_1$, so
# $g_1 - m_1 = \beta_1 g_1$ and $s_1 = (1 - \beta_2)\beta_1^2 g_1^2 + \epsilon$: the first step is
# $\alpha / \beta_1 \cdot \operatorname{sign}(g_1)$, slightly larger than Adam's $\alpha$.

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([0.3, -0.1, 0.2])]]
new_params, state = trace(rule.module, params, grads, {"m": "m_t", "s": "s_t", "t": "t"}, lr=0.1)
print("θ_1 - θ_0 =", new_params[0] - params[0])

# %% [markdown]
# ## Trajectories against Adam

# %%
STEPS, LR = 400, 0.05
fig = trajectories(
    lambda problem: {
        f"AdaBelief (α = {LR})": run(rule.module, problem, STEPS, lr=LR),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    f"AdaBelief against Adam, {STEPS} steps",
)
plt.show()

# %% [markdown]
# Along Rosenbrock's curved valley the gradient changes slowly, so $s_t$ stays small and AdaBelief moves faster
# than Adam. On the quadratic both converge; AdaBelief's larger steps show up as larger oscillations.
#
# ## The belief term $s_t$ against Adam's $v_t$
#
# One tensor of two elements and a fixed gradient sequence, both elements with mean 1: the first one nearly
# constant (noise 0.01), the second one noisy (noise 1). The same gradients go to AdaBelief (`reference`) and to
# `torch.optim.Adam`, whose `exp_avg_sq` is its $v_t$. Adam's $v_t$ tracks $g^2$, of the same order for both
# elements, so both take steps of about $\alpha$. AdaBelief's $s_t$ tracks the *surprise* $(g_t - m_t)^2$. For
# the predictable element the only surprises are those of the first steps, while $m_t$ warms up from 0 toward
# the gradient; $s_t$ then stops growing and the steps keep lengthening, to many times Adam's. For the noisy
# element $s_t$ tends to the gradient's variance (1) and Adam's $v_t$ to its mean square (2): the same order, and
# steps of about Adam's length.

# %%
STEPS, LR = 300, 1e-3
rng = np.random.default_rng(0)
grads = [[1.0 + np.array([0.01, 1.0]) * rng.standard_normal(2)] for _ in range(STEPS)]
params = [np.zeros(2)]
belief_thetas, belief_states = unroll(rule.module, params, grads, lr=LR)
adam_thetas, adam_states = unroll_torch(lambda ps: torch.optim.Adam(ps, lr=LR), params, grads)

t = np.arange(1, STEPS + 1)
names = ("predictable element", "noisy element")
fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
for j, name in enumerate(names):
    axes[0].plot(t, [g[0][j] for g in grads], lw=1, label=name)
    axes[1].semilogy(t, [s.s[0][j] for s in belief_states], color=f"C{j}", label=f"AdaBelief $s_t$, {name}")
    axes[1].semilogy(t, [s[0]["exp_avg_sq"][j] for s in adam_states], "--", color=f"C{j}", label=f"Adam $v_t$, {name}")
    for thetas, style, who in ((belief_thetas, "-", "AdaBelief"), (adam_thetas, "--", "Adam")):
        size = [abs(b[0][j] - a[0][j]) / LR for a, b in pairwise(thetas)]
        axes[2].semilogy(t, size, style, color=f"C{j}", label=f"{who}, {name}")
axes[0].set(xlabel="step $t$", ylabel="$g_t$", title="the gradients fed")
axes[1].set(xlabel="step $t$", ylabel="second-moment buffer", title=r"AdaBelief's $s_t$ against Adam's $v_t$")
axes[2].set(xlabel="step $t$", ylabel=r"$|\theta_t - \theta_{t-1}| \,/\, \alpha$", title="step length per element")
for ax, loc in zip(axes, ("upper left", "lower right", "upper left")):
    ax.legend(fontsize=8, loc=loc)
plt.show()

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.AdaBelief` in float64 against `reference.adabelief`, with weight decay and amsgrad (one
# more buffer, $s^{\max}$).

# %%
params, grads = random_grads([(3,), (2, 3)], steps=6, seed=2)
hp = dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)
agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
