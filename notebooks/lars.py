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
# # LARS: SGD with a local learning rate per layer
#
# LARS (You, Gitman & Ginsburg, 2017, [arXiv:1708.03888](https://arxiv.org/abs/1708.03888), Algorithm 1) is SGD
# with momentum in which every tensor (a "layer") gets its own learning rate $\gamma_t$: the ratio of the
# weights' norm to the gradient's. Each layer then moves by a fixed fraction of its own norm, which is what lets
# very large batches (and learning rates) train without the small layers blowing up.
#
# For each parameter tensor, $t \ge 1$:
#
# $$
# \begin{aligned}
# d_t &= g_t + \lambda\, \theta_{t-1} \\
# \gamma_t &= \frac{\phi(\lVert \theta_{t-1} \rVert)}{\lVert g_t \rVert + \lambda \lVert \theta_{t-1} \rVert}
#   \qquad (\gamma_t = 1 \text{ if either side is } 0) \\
# v_t &= \begin{cases} \gamma_t\, d_t & t = 1 \\ m\, v_{t-1} + (1 - \delta)\, \gamma_t\, d_t & t > 1 \end{cases} \\
# s_t &= \begin{cases} \gamma_t\, d_t + m\, v_t & \text{nesterov} \\ v_t & \text{otherwise} \end{cases} \\
# \theta_t &= \theta_{t-1} - \alpha\, s_t
# \end{aligned}
# $$
#
# $m$ = `momentum`, $\delta$ = `dampening`, $\phi$ clamps into `scale_clip` (no clamp when `None`). With
# $\delta = 0$ and a constant $\alpha$ this is the paper's $v_t = m v_{t-1} + \alpha\gamma_t(g_t + \lambda
# \theta_{t-1})$, $\theta_t = \theta_{t-1} - v_t$.
#
# **Where this differs from the spec or holocron 0.3.0** ([docs/errata.md](../docs/errata.md)):
# row 19, the paper's polynomial schedule is left to a torch LR scheduler; row 20, $\gamma_t$ is applied
# *inside* the momentum buffer (holocron rescales the whole history by today's $\gamma_t$); row 21, dampening
# and Nesterov follow `torch.optim.SGD`; row 22, `scale_clip` is applied (holocron accepts and ignores it);
# row 23, the paper's trust coefficient is absorbed into $\alpha$; row 3, $\gamma = 1$ for a zero norm.

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

rule = RULES["lars"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## One step, symbol by symbol
#
# `v` is the momentum buffer $v_t$ and `t` the step count. At $t = 1$ the buffer is just $\gamma_1 d_1$
# (no dampening on the first step, as in `torch.optim.SGD`), so $\lVert v_1 \rVert = \phi(\lVert\theta_0\rVert)$
# when $\lambda = 0$: the step is a fixed fraction $\alpha$ of the layer's norm, whatever $\lVert g \rVert$.

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([30.0, -10.0, 20.0])]]
new_params, state = trace(rule.module, params, grads, {"v": "v_t", "t": "t"}, lr=0.1, momentum=0.9)
print(f"‖θ_0‖ = {np.linalg.norm(params[0]):.6f}, ‖v_1‖ = {np.linalg.norm(state.v[0]):.6f}")

# %% [markdown]
# ## Trajectories against Adam
#
# On a single 2-element tensor the local learning rate makes every plain LARS step $\alpha\lVert\theta\rVert$
# long, pointing down the gradient; momentum adds up to $1/(1 - m)$ of it along a steady direction.

# %%
STEPS, LR = 400, 0.01
fig = trajectories(
    lambda problem: {
        f"LARS (α = {LR}, momentum 0.9)": run(rule.module, problem, STEPS, lr=LR, momentum=0.9),
        f"LARS (α = {LR}, no momentum)": run(rule.module, problem, STEPS, lr=LR),
        "Adam (α = 0.05)": adam(problem, STEPS, 0.05),
    },
    f"LARS against Adam, {STEPS} steps",
)
plt.show()

# %% [markdown]
# Without momentum, LARS crawls along Rosenbrock's valley with steps of $\alpha\lVert\theta\rVert$ and slows down
# further as the path passes near the origin. With momentum 0.9 the steps along the valley add up. On the
# quadratic the step length shrinks with $\lVert\theta\rVert$, the distance to the minimum, so the loss falls
# geometrically.
#
# ## The local learning rate, layer by layer
#
# Three "layers" of 16 weights with norms 0.05, 1 and 30, whose gradients differ in scale by a factor of 1000.
# Plain SGD (`torch.optim.SGD`) moves each layer by $\alpha\lVert g\rVert$: the small layer with the large
# gradient is thrown around while the large layer does not move. LARS moves each by $\alpha\,\phi(\lVert
# \theta\rVert)$, i.e. by the same fraction $\alpha$ of its own norm. With `scale_clip=(0, 10)` the largest layer
# is limited to a step of $10\alpha$, a fraction $\alpha / 3$ of its norm.

# %%
norms = [0.05, 1.0, 30.0]
params, grads = layered(norms, grad_scales=[10.0, 1.0, 0.01])
LR = 0.01
runs = {
    "SGD": unroll_torch(lambda ps: torch.optim.SGD(ps, lr=LR), params, grads)[0],
    "LARS": unroll(rule.module, params, grads, lr=LR)[0],
    "LARS (scale_clip=(0, 10))": unroll(rule.module, params, grads, lr=LR, scale_clip=(0.0, 10.0))[0],
}
fig = plot_relative_updates(runs, [f"layer {i}: ‖θ‖ = {n:g}" for i, n in enumerate(norms)], LR)
plt.show()

# %% [markdown]
# ## Momentum keeps each step's local learning rate
#
# The buffer accumulates $\gamma_t d_t$, each term scaled by the local rate *of its own step*
# ([row 20](../docs/errata.md)). Feeding a gradient whose norm jumps by 100× at step 4 shows it: the buffer's
# norm does not jump (the new $\gamma_t$ is 100× smaller), and the old terms are not rescaled.

# %%
params = [np.array([1.0, -2.0, 0.5])]
g = np.array([0.3, -0.1, 0.2])
grads = [[g], [g], [g], [100 * g], [100 * g], [g]]
_, states = unroll(rule.module, params, grads, lr=0.1, momentum=0.9)
for t, (gs, s) in enumerate(zip(grads, states), start=1):
    print(f"t = {t}: ‖g_t‖ = {np.linalg.norm(gs[0]):8.4f}   ‖v_t‖ = {np.linalg.norm(s.v[0]):.6f}")

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.LARS` in float64 against `reference.lars`, on the same gradients, with momentum,
# dampening, weight decay and a clip; after every step the largest absolute difference.

# %%
params, grads = random_grads([(3,), (2, 3)], steps=6, seed=2)
hp = dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, scale_clip=(0.5, 2.0))
agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
hp = dict(lr=0.05, momentum=0.9, nesterov=True)
agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
