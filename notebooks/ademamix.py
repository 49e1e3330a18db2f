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
# # AdEMAMix: Adam plus a slow moving average of the gradients
#
# AdEMAMix (Pagliardini, Ablin & Grangier, 2024, [arXiv:2409.03050](https://arxiv.org/abs/2409.03050),
# Algorithm 1, as in apple/ml-ademamix's PyTorch code) observes that a single EMA cannot both react to recent
# gradients (small $\beta$) and remember old ones (large $\beta$). It adds to Adam's fast EMA $m_1$ a *slow*
# EMA $m_2$ with $\beta_3$ close to 1 (half-life of thousands of steps), weighted by $\alpha$. Early in
# training the slow EMA is mostly made of stale gradients, so two warm-ups ramp $\alpha$ up from 0 and $\beta_3$
# up from $\beta_1$.
#
# Per element, $t \ge 1$, $m1_0 = m2_0 = \nu_0 = 0$:
#
# $$
# \begin{aligned}
# \alpha_t &= \begin{cases} \alpha\, t / T_\alpha & t < T_\alpha \\ \alpha & \text{otherwise} \end{cases}
#   \qquad (T_\alpha = \text{alpha\_warmup}) \\
# \beta_{3,t} &= \begin{cases}
#   \exp\!\left( \dfrac{\ln\beta_1 \ln\beta_3}{(1 - t/T_{\beta_3}) \ln\beta_3 + (t/T_{\beta_3}) \ln\beta_1} \right)
#   & t < T_{\beta_3} \\ \beta_3 & \text{otherwise} \end{cases}
#   \qquad (T_{\beta_3} = \text{beta3\_warmup}) \\
# m1_t &= \beta_1 m1_{t-1} + (1 - \beta_1)\, g_t \\
# m2_t &= \beta_{3,t}\, m2_{t-1} + (1 - \beta_{3,t})\, g_t \qquad \text{(slow EMA, no bias correction)} \\
# \nu_t &= \beta_2 \nu_{t-1} + (1 - \beta_2)\, g_t^2 \\
# \hat{m1}_t &= \frac{m1_t}{1 - \beta_1^t}, \qquad \hat\nu_t = \frac{\nu_t}{1 - \beta_2^t} \\
# \theta_t &= \theta_{t-1} - \eta \left[ \frac{\hat{m1}_t + \alpha_t\, m2_t}{\sqrt{\hat\nu_t} + \epsilon}
#   + \lambda\, \theta_{t-1} \right]
# \end{aligned}
# $$
#
# The $\beta_3$ warm-up is linear in the *half-life* $\ln 0.5 / \ln\beta$, from $\beta_1$'s to $\beta_3$'s;
# without warm-ups (`None`) $\alpha_t = \alpha$ and $\beta_{3,t} = \beta_3$.
#
# **Where this differs from the spec or holocron 0.3.0** ([docs/errata.md](../docs/errata.md)): row 10, the second
# moment is the paper's $\nu_t$, an EMA of $g_t^2$ (the spec copies AdaBelief's $(g - m)^2 + \epsilon$); row 11,
# weight decay is decoupled, $\theta \mathrel{-}= \eta(u + \lambda\theta)$ (holocron: coupled L2); row 12, the
# warm-ups exist as keyword-only `alpha_warmup`, `beta3_warmup`, in closed form (the official code adds $10^{-8}$
# inside its logarithms); row 13, there is no `amsgrad`, and $\alpha$ weighs the slow EMA (default 5, the spec's).

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np

from holocron_torch import optim
from holocron_torch.study import ROSENBROCK, adam, agreement, describe, random_grads, run, trace, trajectories
from reference import RULES
from reference.ademamix import alpha_t, beta3_t

rule = RULES["ademamix"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## One step, symbol by symbol
#
# `m1`, `m2`, `nu` are $m1_t$, $m2_t$, $\nu_t$; `t` is $t$. After one step $m1_1 = (1 - \beta_1) g_1$,
# $m2_1 = (1 - \beta_3) g_1$ (a ten-thousandth of $g_1$ with the default $\beta_3 = 0.9999$) and
# $\nu_1 = (1 - \beta_2) g_1^2$.

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([0.3, -0.1, 0.2])]]
symbols = {"m1": "m1_t", "m2": "m2_t", "nu": "ν_t", "t": "t"}
new_params, state = trace(rule.module, params, grads, symbols, lr=0.1)

# %% [markdown]
# ## The warm-ups
#
# $\alpha_t$ and $\beta_{3,t}$ as the reference computes them (`reference.ademamix.alpha_t`, `beta3_t`), for
# $T_\alpha = T_{\beta_3} = 1000$ and the default betas. The right panel shows the half-life of the slow EMA,
# $\ln 0.5 / \ln \beta_{3,t}$: linear in $t$, from $\beta_1$'s 6.6 steps to $\beta_3$'s 6931.

# %%
beta1, _, beta3 = rule.defaults["betas"]
alpha = rule.defaults["alpha"]
T = 1000
ts = np.arange(1, 1301)
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
axes[0].plot(ts, [alpha_t(t, alpha, T) for t in ts], label=r"$T_\alpha = 1000$")
axes[0].plot(ts, [alpha_t(t, alpha, None) for t in ts], "--", label="no warm-up")
axes[0].set(xlabel="step $t$", ylabel=r"$\alpha_t$", title=r"$\alpha_t$ (alpha_warmup)")
b3 = np.array([beta3_t(t, beta1, beta3, T) for t in ts])
axes[1].plot(ts, 1 - b3, label=r"$T_{\beta_3} = 1000$")
axes[1].plot(ts, [1 - beta3_t(t, beta1, beta3, None) for t in ts], "--", label="no warm-up")
axes[1].set(xlabel="step $t$", ylabel=r"$1 - \beta_{3,t}$", yscale="log", title=r"$\beta_{3,t}$ (beta3_warmup)")
axes[2].plot(ts, np.log(0.5) / np.log(b3))
axes[2].set(xlabel="step $t$", ylabel="steps", title=r"half-life of the slow EMA, $\ln 0.5 / \ln\beta_{3,t}$")
for ax in axes[:2]:
    ax.legend()
plt.show()

# %% [markdown]
# ## Trajectories against Adam
#
# With the default $\beta_3 = 0.9999$ the slow EMA would hold only $1 - 0.9999^{400} \approx 4\%$ of the
# gradient after 400 steps, so here $\beta_3 = 0.995$ (half-life 138 steps), and the warm-ups last 200 steps.
# $\alpha = 0$ is Adam exactly (with decoupled weight decay: AdamW).

# %%
STEPS, LR = 400, 0.02
betas = (0.9, 0.999, 0.995)
fig = trajectories(
    lambda problem: {
        f"AdEMAMix (η = {LR}), α = 5": run(rule.module, problem, STEPS, lr=LR, betas=betas),
        "AdEMAMix, α = 5, warm-ups 200": run(
            rule.module, problem, STEPS, lr=LR, betas=betas, alpha_warmup=200, beta3_warmup=200
        ),
        "AdEMAMix, α = 0": run(rule.module, problem, STEPS, lr=LR, betas=betas, alpha=0.0),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    f"AdEMAMix against Adam, {STEPS} steps, β3 = {betas[2]}",
    styles={f"Adam (α = {LR})": {"ls": "--", "color": "k", "lw": 1}},
)
plt.show()

# %% [markdown]
# The slow EMA keeps pushing in the direction the gradients have pointed for a long time: along Rosenbrock's
# valley, that is the way to the minimum, and $\alpha = 5$ gets much further than Adam in the same number of
# steps. Without warm-ups the early, stale gradients (down the valley's wall) are in $m2$ too, which the
# warm-ups avoid. On the quadratic the slow memory causes overshoot: the loss oscillates with the period of the
# slow EMA.
#
# ## Fast and slow EMA along a run
#
# $m1_t$ and $m2_t$ for $\theta_1$ along the Rosenbrock run with warm-ups: the fast EMA follows the gradient,
# the slow one integrates it.

# %%
params = [ROSENBROCK.start.copy()]
hp = dict(lr=LR, betas=betas, alpha_warmup=200, beta3_warmup=200)
state = rule.module.init(params, **hp)
m1, m2 = [], []
for _ in range(STEPS):
    params, state = rule.module.step(params, [ROSENBROCK.grad(params[0])], state, **hp)
    m1.append(state.m1[0][0])
    m2.append(state.m2[0][0])
fig, ax = plt.subplots(figsize=(9, 3.8), layout="constrained")
ax.plot(m1, label=r"fast EMA $m1_t$ ($\beta_1 = 0.9$)")
ax.plot(m2, label=r"slow EMA $m2_t$ ($\beta_{3,t}$ warming up to 0.995)")
ax.axhline(0, color="k", lw=0.5)
ax.set(xlabel="step $t$", ylabel=r"EMA of $\partial f / \partial \theta_1$", title="AdEMAMix's two first moments")
ax.set_yscale("symlog", linthresh=0.1)
ax.legend()
plt.show()

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.AdEMAMix` in float64 against `reference.ademamix`, with decoupled weight decay and both
# warm-ups active over the 6 steps.

# %%
params, grads = random_grads([(3,), (2, 3)], steps=6, seed=2)
hp = dict(lr=0.05, betas=(0.8, 0.99, 0.999), alpha=3.0, weight_decay=0.1, alpha_warmup=4, beta3_warmup=10)
agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
