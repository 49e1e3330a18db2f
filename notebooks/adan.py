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
# # Adan: adaptive Nesterov momentum from gradient differences
#
# Adan (Xie et al., 2022, [arXiv:2208.06677](https://arxiv.org/abs/2208.06677), as in the official sail-sg/Adan
# code). Nesterov momentum evaluates the gradient at an extrapolated point; Adan avoids the extra evaluation by
# a first-order expansion: the correction is the *difference* of consecutive gradients, $\Delta_t = g_t -
# g_{t-1}$, kept as its own moving average $v_t$ and added to the momentum with weight $\beta_2$. The second
# moment $n_t$ is taken of the corrected gradient $g_t + \beta_2 \Delta_t$.
#
# Per element, $t \ge 1$, $m_0 = v_0 = n_0 = 0$, betas in the official code's convention (the paper's $1 - \beta$):
#
# $$
# \begin{aligned}
# \Delta_t &= g_t - g_{t-1} \qquad (\Delta_1 = 0) \\
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
# v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, \Delta_t \\
# n_t &= \beta_3 n_{t-1} + (1 - \beta_3)\, (g_t + \beta_2 \Delta_t)^2 \\
# n^{\max}_t &= \max(n^{\max}_{t-1}, n_t) \qquad \text{(amsgrad only; holocron's extension)} \\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \quad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \quad
#   \hat n_t = \frac{n_t}{1 - \beta_3^t} \quad (n^{\max}_t \text{ with amsgrad}) \\
# u_t &= \frac{\hat m_t + \beta_2 \hat v_t}{\sqrt{\hat n_t} + \epsilon} \\
# \theta_t &= \frac{\theta_{t-1} - \alpha\, u_t}{1 + \alpha \lambda} \qquad \text{(proximal weight decay)}
# \end{aligned}
# $$
#
# **Where this differs from the spec or holocron 0.3.0** ([docs/errata.md](../docs/errata.md)): row 14, the
# update uses $\beta_2 \hat v_t$ (the code's convention, not the paper's $(1 - \beta_2)$); row 15, the previous
# gradient is stored after every step (holocron 0.3.0 never updates it, so its $\Delta_t = g_t$); row 16, weight
# decay is the proximal division only (holocron also adds an L2 term to $g$); row 17, zero initial moments with
# three bias corrections and $\epsilon$ outside the root, as the official code; row 18, `amsgrad` as an
# extension.

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np

from holocron_torch import optim
from holocron_torch.study import ROSENBROCK, adam, agreement, describe, random_grads, run, trace, trajectories
from reference import RULES

rule = RULES["adan"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## Two steps, symbol by symbol
#
# `m`, `v`, `n` are $m_t$, $v_t$, $n_t$; `g_prev` is $g_{t-1}$ for the next step; `t` is $t$. Step 1 has
# $\Delta_1 = 0$, so $v_1 = 0$; `g_prev` becomes $g_1$, and at step 2 $v_2 = (1 - \beta_2)(g_2 - g_1)$
# ([row 15](../docs/errata.md)).

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([0.3, -0.1, 0.2])], [np.array([0.25, -0.05, 0.3])]]
symbols = {"m": "m_t", "v": "v_t", "n": "n_t", "g_prev": "g_{t-1} next", "t": "t"}
new_params, state = trace(rule.module, params, grads, symbols, lr=0.1)

# %% [markdown]
# Weight decay is a proximal step, not a gradient term ([row 16](../docs/errata.md)): with a zero gradient,
# $u_t = 0$ and one step with $\alpha = 0.5$, $\lambda = 0.1$ divides $\theta$ by $1 + \alpha\lambda = 1.05$.

# %%
(theta1,), _ = rule.module.step(params, [np.zeros(3)], rule.module.init(params), lr=0.5, weight_decay=0.1)
print("θ_0 / θ_1 =", params[0] / theta1)

# %% [markdown]
# ## Trajectories against Adam, with and without the Nesterov term
#
# $\beta_2 = 0$ switches the gradient-difference term off: $v_t = \Delta_t$ enters with weight 0, $n_t$ becomes the
# EMA of $g_t^2$, and Adan is Adam with Adan's $\beta_1 = 0.98$ and $\beta_3 = 0.99$.

# %%
STEPS, LR = 400, 0.05
fig = trajectories(
    lambda problem: {
        f"Adan (α = {LR})": run(rule.module, problem, STEPS, lr=LR),
        f"Adan (α = {LR}), β2 = 0: no Nesterov term": run(rule.module, problem, STEPS, lr=LR, betas=(0.98, 0.0, 0.99)),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    f"Adan against Adam, {STEPS} steps",
)
plt.show()

# %% [markdown]
# The gradient-difference term anticipates where the gradient is going. On Rosenbrock, where the gradient turns
# as the path follows the curved valley, Adan with the term reaches the minimum's neighbourhood in 400 steps;
# without it, it falls behind. The heavy first moment ($\beta_1 = 0.98$) makes both Adan runs overshoot and
# oscillate more than Adam on the quadratic.
#
# ## What the buffers hold along a Rosenbrock run
#
# $m_t$ (first coordinate) against $v_t$, the EMA of gradient differences, along the run above: $v_t$ is
# large while the gradient changes fast (the entry into the valley) and decays to 0 where it is steady.

# %%
params = [ROSENBROCK.start.copy()]
state = rule.module.init(params)
history = []
for _ in range(STEPS):
    params, state = rule.module.step(params, [ROSENBROCK.grad(params[0])], state, lr=LR)
    history.append((state.m[0].copy(), state.v[0].copy()))
m_hist, v_hist = (np.array(x) for x in zip(*history))
fig, ax = plt.subplots(figsize=(9, 3.8), layout="constrained")
for j in range(2):
    ax.plot(np.abs(m_hist[:, j]), color=f"C{j}", label=rf"$|m_t|$, $\theta_{j + 1}$")
    ax.plot(np.abs(v_hist[:, j]), "--", color=f"C{j}", label=rf"$|v_t|$ (EMA of $\Delta_t$), $\theta_{j + 1}$")
ax.set(yscale="log", xlabel="step $t$", ylabel="buffer magnitude", title="Adan's buffers along Rosenbrock")
ax.legend(fontsize=8, ncols=2)
plt.show()

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.Adan` in float64 against `reference.adan`, with weight decay, then with amsgrad (one more
# buffer, $n^{\max}$).

# %%
params, grads = random_grads([(3,), (2, 3)], steps=6, seed=2)
for hp in (dict(lr=0.05, weight_decay=0.1), dict(lr=0.05, betas=(0.9, 0.5, 0.95), amsgrad=True)):
    agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
