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
# # TAdam: Adam with a Student-t first moment
#
# TAdam (Ilboudo, Kobayashi & Sugimoto, 2020, [arXiv:2003.00179](https://arxiv.org/abs/2003.00179), as in the
# authors' repository Mahoumaru/TAdam) replaces Adam's exponential moving average of the gradient by the
# maximum-likelihood mean of a Student-t distribution. Each new gradient gets a weight $w_t$ that shrinks when
# the gradient lies far from the current mean (measured in units of the second moment): an outlier gradient
# barely moves $m_t$. The degrees of freedom $\nu$ (`dof`) set how heavy the tails are: small $\nu$, strong
# down-weighting; $\nu \to \infty$, every $w_t = 1$ and TAdam is Adam.
#
# For each parameter tensor of $d$ elements, $t \ge 1$, $m_0 = v_0 = 0$, $W_0 = \beta_1 / (1 - \beta_1)$,
# $\nu$ = `dof` or $d$ when `None`:
#
# $$
# \begin{aligned}
# \hat g_t &= g_t + \lambda\, \theta_{t-1} \qquad \text{(coupled L2)} \\
# w_t &= \frac{\nu + d}{\nu + \sum_j (\hat g_{t,j} - m_{t-1,j})^2 / (v_{t-1,j} + \epsilon)}
#   \qquad (w_t = 1 \text{ when } \nu = \infty) \\
# m_t &= \frac{W_{t-1}}{W_{t-1} + w_t}\, m_{t-1} + \frac{w_t}{W_{t-1} + w_t}\, \hat g_t \\
# W_t &= \frac{2\beta_1 - 1}{\beta_1}\, W_{t-1} + w_t \\
# v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, \hat g_t^2 \\
# v^{\max}_t &= \max(v^{\max}_{t-1}, v_t) \qquad \text{(amsgrad only)} \\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}
#   \quad (v^{\max}_t \text{ with amsgrad}) \\
# \theta_t &= \theta_{t-1} - \alpha\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
# \end{aligned}
# $$
#
# **Where this differs from the spec** ([docs/errata.md](../docs/errata.md)): row 5, $v_t$ is the EMA of
# $\hat g_t^2$ (the spec's EMA of $g_t - g_{t-1}$ can go negative); row 6, the recursion for $W_t$ that the spec
# leaves out; row 7, $d$ = numel, and `dof=inf` gives exactly Adam's $\beta_1$-EMA (holocron 0.3.0: NaN);
# row 8, $\beta_1 \in [0.5, 1)$, since below 0.5 the factor $(2\beta_1 - 1)/\beta_1$ is negative; row 9, the
# first update is $\approx 0$: $v_0 = 0$ makes $w_1 \approx 0$ (faithful to the authors' code).

# %%
import inspect
import itertools

import matplotlib.pyplot as plt
import numpy as np

from holocron_torch import optim
from holocron_torch.study import (
    QUADRATIC,
    adam,
    agreement,
    describe,
    plot_losses,
    plot_paths,
    random_grads,
    run,
    trace,
    trajectories,
)
from reference import RULES

rule = RULES["tadam"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## Two steps, symbol by symbol
#
# `m` is $m_t$, `v` is $v_t$, `W` is $W_t$ (one scalar per tensor), `t` is $t$. Step 1: $v_0 = 0$, so the
# distance in the denominator of $w_1$ is divided by $\epsilon$: $w_1 \approx 0$, $m_1 \approx 0$ and $\theta$
# moves by about $10^{-8}$ ([row 9](../docs/errata.md)). $W_1 = (2\beta_1 - 1)/\beta_1 \cdot W_0 + w_1 = 8 +
# w_1$. At step 2, $v_1 = (1 - \beta_2) g_1^2$ is still a thousand times smaller than $g_1^2$ (it is not
# bias-corrected inside $w_t$), so $w_2$ is small as well: $m_2$ is far below Adam's $0.9 \cdot 0.1 \cdot 0.3 +
# 0.1 \cdot 0.25 \approx 0.05$, and TAdam's first steps are timid until $v_t$ has grown.

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([0.3, -0.1, 0.2])], [np.array([0.25, -0.05, 0.3])]]
new_params, state = trace(rule.module, params, grads, {"m": "m_t", "v": "v_t", "W": "W_t", "t": "t"}, lr=0.1)
print("θ_2 - θ_0 =", new_params[0] - params[0])

# %% [markdown]
# ## Trajectories against Adam
#
# On the clean test functions (exact gradients) the first step is lost, and afterwards TAdam behaves like Adam
# except when the gradient changes abruptly, which it then treats as an outlier.

# %%
STEPS, LR = 400, 0.05
fig = trajectories(
    lambda problem: {
        f"TAdam (α = {LR})": run(rule.module, problem, STEPS, lr=LR),
        f"TAdam (α = {LR}, dof = 1)": run(rule.module, problem, STEPS, lr=LR, dof=1.0),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    f"TAdam against Adam, {STEPS} steps",
)
plt.show()

# %% [markdown]
# ## Degrees of freedom against outlier gradients
#
# The quadratic again, its gradient now corrupted by small noise and, at about 5% of the steps (marked in grey),
# by an outlier 300 times larger. Every run sees the same noise sequence. Adam's mean absorbs each outlier
# and is thrown off the valley; TAdam with a small $\nu$ down-weights them. `dof=inf` is Adam's EMA exactly,
# so its path is Adam's, drawn dashed on top of it ([row 7](../docs/errata.md)).

# %%
STEPS, LR = 500, 0.05
rng = np.random.default_rng(0)
noise = 0.1 * rng.standard_normal((STEPS, 2))
outliers = np.flatnonzero(rng.random(STEPS) < 0.05)
noise[outliers] += 30.0 * rng.standard_normal((len(outliers), 2))


def with_outliers():
    """The quadratic with the noise sequence added to its gradient: step t gets noise[t], in every run."""
    t = itertools.count()
    return QUADRATIC._replace(name="noisy quadratic", grad=lambda x: QUADRATIC.grad(x) + noise[next(t)])


paths = {f"TAdam, dof = {dof}": run(rule.module, with_outliers(), STEPS, lr=LR, dof=dof) for dof in (1.0, 10.0)}
paths["TAdam, dof = None (ν = d = 2)"] = run(rule.module, with_outliers(), STEPS, lr=LR)
paths["TAdam, dof = inf"] = run(rule.module, with_outliers(), STEPS, lr=LR, dof=float("inf"))
paths["Adam"] = adam(with_outliers(), STEPS, LR)
print(f"max |TAdam(dof = inf) - Adam| over the path: {np.max(np.abs(paths['TAdam, dof = inf'] - paths['Adam'])):.2e}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
styles = {"Adam": {"ls": "--", "color": "k", "lw": 1}}
plot_paths(QUADRATIC, paths, ax1, styles)
plot_losses(QUADRATIC, paths, ax2, styles)
for t in outliers:
    ax2.axvline(t, color="0.8", lw=0.8, zorder=0)
ax1.set_title("noisy quadratic with outlier gradients")
ax2.set_title("loss (grey lines: outlier steps)")
ax2.legend(fontsize=8, loc="lower left")
ax1.legend(fontsize=8, loc="lower right")
plt.show()
tail = {label: np.mean([QUADRATIC.f(p) for p in path[STEPS // 2 :]]) for label, path in paths.items()}
for label, value in tail.items():
    print(f"{label:<32} mean loss over the second half: {value:.3e}")

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.TAdam` in float64 against `reference.tadam`: with weight decay and amsgrad (one more
# buffer, $v^{\max}$), and with `dof=inf`.

# %%
params, grads = random_grads([(3,), (2, 3)], steps=6, seed=2)
for hp in (dict(lr=0.05, weight_decay=0.1, amsgrad=True, dof=3.0), dict(lr=0.05, betas=(0.6, 0.99), dof=float("inf"))):
    agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
