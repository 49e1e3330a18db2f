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
# # LAMB: Adam's direction, scaled per layer by a trust ratio
#
# LAMB (You et al., 2019, [arXiv:1904.00962](https://arxiv.org/abs/1904.00962), Algorithm 2) computes Adam's
# bias-corrected direction, adds decoupled-style weight decay to it, and then rescales the whole tensor (a
# "layer") so that its step is proportional to the layer's own norm: every layer moves by about the same
# *relative* amount, whatever the scale of its weights or gradients.
#
# For each parameter tensor, $t \ge 1$, $m_0 = v_0 = 0$:
#
# $$
# \begin{aligned}
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
# v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t} \\
# r_t &= \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} \\
# u_t &= r_t + \lambda\, \theta_{t-1} \\
# \tau_t &= \frac{\phi(\lVert \theta_{t-1} \rVert)}{\lVert u_t \rVert}
#   \qquad (\tau_t = 1 \text{ if either norm is } 0) \\
# \theta_t &= \theta_{t-1} - \alpha\, \tau_t\, u_t
# \end{aligned}
# $$
#
# with $\phi(z) = \min(\max(z, lo), hi)$ and $(lo, hi)$ = `scale_clip`, $(0, 10)$ when `None`.
#
# **Where this differs from the spec** ([docs/errata.md](../docs/errata.md)):
# row 1, the trust ratio's denominator is $\lVert r_t + \lambda\theta_{t-1}\rVert$ (the spec drops $\lambda$
# and uses $\theta_t$); row 2, $m$ and $v$ are bias-corrected (holocron 0.3.0 uses the raw moments);
# row 3, $\tau = 1$ when a norm is zero, so a zero-initialised tensor still trains;
# row 4, `scale_clip=None` means $(0, 10)$, holocron's behaviour.

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from holocron_torch import optim
from holocron_torch.study import (
    adam,
    agreement,
    describe,
    layered,
    plot_relative_updates,
    random_grads,
    run,
    trace,
    trajectories,
    unroll,
    unroll_torch,
)
from reference import RULES

rule = RULES["lamb"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation
#
# `reference/lamb.py` is the executable form of the equations above; `holocron_torch.optim.LAMB` is tested
# against it step for step.

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## One step, symbol by symbol
#
# Two tiny tensors, one step with weight decay. The State fields are the paper's symbols: `m` is $m_t$, `v` is
# $v_t$, `t` is $t$. After one step $\hat m_1 = g_1$ and $\hat v_1 = g_1^2$, so $r_1 \approx \operatorname{sign}(g_1)$,
# and each tensor moves by $\alpha\,\phi(\lVert\theta_0\rVert)$ in norm.

# %%
params = [np.array([1.0, -2.0, 0.5]), np.array([[0.0, 0.0], [0.0, 0.0]])]
grads = [[np.array([0.3, -0.1, 0.2]), np.array([[1.0, -1.0], [0.5, 0.0]])]]
symbols = {"m": "m_t", "v": "v_t", "t": "t"}
new_params, state = trace(rule.module, params, grads, symbols, lr=0.1, weight_decay=0.01)
for i, (before, after) in enumerate(zip(params, new_params)):
    step_length = np.linalg.norm(after - before)
    print(f"tensor {i}: ‖θ_0‖ = {np.linalg.norm(before):.6f}, step length ‖θ_1 - θ_0‖ = {step_length:.6f}")

# %% [markdown]
# The second tensor starts at zero: $\phi(0) = 0$ would freeze it forever, so $\tau := 1$
# ([row 3](../docs/errata.md)) and it takes a plain $\alpha u_1$ step.
#
# ## Trajectories against Adam
#
# Both test functions are a single 2-element tensor, so the trust ratio makes every LAMB step exactly
# $\alpha\,\phi(\lVert\theta\rVert)$ long: a normalised-gradient method whose step shrinks only as
# $\lVert\theta\rVert$ does. Adam (`torch.optim.Adam`, same $\alpha$) is the baseline.

# %%
STEPS, LR = 400, 0.02
fig = trajectories(
    lambda problem: {
        f"LAMB (α = {LR})": run(rule.module, problem, STEPS, lr=LR),
        f"LAMB (α = {LR}, λ = 0.1)": run(rule.module, problem, STEPS, lr=LR, weight_decay=0.1),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    f"LAMB against Adam, {STEPS} steps",
)
plt.show()

# %% [markdown]
# The step length is proportional to $\lVert\theta\rVert$. On the quadratic, whose minimum is the origin, the
# steps shrink with the distance to it and the loss falls geometrically (a straight line on the log scale). On
# Rosenbrock the valley runs through the origin: there $\lVert\theta\rVert \to 0$ takes the step length with
# it, and LAMB stalls at $(0, 0)$ where $f = 1$. The trust ratio is made for the layers of a network, whose
# weights are not near zero; on a 2-d toy it is mostly a normalised-gradient method.
#
# ## The trust ratio, layer by layer
#
# Three "layers" with very different norms (0.05, 1 and 30) and gradients of different scales. Adam moves every
# element by about $\alpha$, so the small layer is rewritten at each step while the large one barely moves.
# LAMB moves each layer by $\alpha\,\phi(\lVert\theta\rVert)$: the same relative change $\alpha$ for all,
# until the norm exceeds the clip's upper end $hi = 10$ (the 30-norm layer then moves by $\alpha \cdot 10/30$).

# %%
norms = [0.05, 1.0, 30.0]
params, grads = layered(norms, grad_scales=[10.0, 1.0, 0.01])
LR = 0.01

runs = {
    "Adam": unroll_torch(lambda ps: torch.optim.Adam(ps, lr=LR), params, grads)[0],
    "LAMB (scale_clip=None: (0, 10))": unroll(rule.module, params, grads, lr=LR)[0],
    "LAMB (scale_clip=(0, 100))": unroll(rule.module, params, grads, lr=LR, scale_clip=(0.0, 100.0))[0],
}
fig = plot_relative_updates(runs, [f"layer {i}: ‖θ‖ = {n:g}" for i, n in enumerate(norms)], LR)
plt.show()

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.LAMB` in float64 and `reference.lamb` are fed the same gradients on tiny tensors (a
# vector and a matrix) with non-default hyperparameters; after every step the largest absolute difference of
# the parameters and of each state buffer is printed. `run_case` then replays the same scenario under the test
# suite's tolerance.

# %%
params, grads = random_grads([(3,), (2, 3)], steps=6, seed=2)
hp = dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1, scale_clip=(0.5, 2.0))
agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
