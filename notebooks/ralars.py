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
# # RaLars: RAdam's rectified direction with a LARS/LAMB trust ratio
#
# RaLars is holocron's composition of RAdam (Liu et al., 2019, [arXiv:1908.03265](https://arxiv.org/abs/1908.03265))
# with the layer-wise trust ratio of LARS/LAMB ([arXiv:1708.03888](https://arxiv.org/abs/1708.03888)). There is no
# paper for the composition: holocron 0.3.0's rule is the definition, written out in `reference/ralars.py`
# ([docs/errata.md](../docs/errata.md), row 33).
#
# RAdam's observation: in the first steps the second moment $v_t$ rests on too few gradients for its variance to
# be trusted. Its approximate degrees of freedom $\rho_t$ grow with $t$; while $\rho_t \le 4$ the variance of
# the adaptive step is undefined and RaLars falls back to plain momentum (unless `force_adaptive_momentum`);
# afterwards it rectifies the adaptive direction by $r_t$. For each parameter tensor, $t \ge 1$:
#
# $$
# \begin{aligned}
# m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t} \\
# \rho_\infty &= \frac{2}{1 - \beta_2} - 1, \qquad
#   \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t} \\
# r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}} \\
# a_t &= \begin{cases}
#   r_t\, \hat m_t / (\sqrt{\hat v_t} + \epsilon) & \rho_t > 4 \\
#   \hat m_t / (\sqrt{\hat v_t} + \epsilon) & \text{else, if force\_adaptive\_momentum} \\
#   \hat m_t & \text{otherwise}
# \end{cases} \\
# u_t &= a_t + \lambda\, \theta_{t-1} \\
# \tau_t &= \frac{\phi(\lVert \theta_{t-1} \rVert)}{\lVert u_t \rVert}
#   \qquad (\tau_t = 1 \text{ if either norm is } 0) \\
# \theta_t &= \theta_{t-1} - \alpha\, \tau_t\, u_t
# \end{aligned}
# $$
#
# $\phi$ clamps into `scale_clip`, $(0, 10)$ when `None` (row 4). The threshold is holocron's $\rho_t > 4$ (the
# RAdam paper's), not the official RAdam code's $\rho_t \ge 5$: with $\beta_2 = 0.999$, $\rho_t \approx t$ for
# small $t$, and rectification starts at step 5. With $\lambda = 0$, $r_t$ (one number per step) cancels inside
# $\tau_t u_t$: only the *direction* of the step changes at the switch, never its length. Row 3: $\tau = 1$ for
# a zero norm.

# %%
import inspect
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np

from holocron_torch import optim
from holocron_torch.study import adam, agreement, describe, random_grads, run, trace, trajectories, unroll
from reference import RULES

rule = RULES["ralars"]
Optimizer = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## One step, symbol by symbol
#
# `m` is $m_t$, `v` is $v_t$, `t` is $t$. At $t = 1$, $\rho_1 = 1 \le 4$: the step follows $\hat m_1 = g_1$ (the
# raw gradient direction), scaled to length $\alpha\,\phi(\lVert\theta_0\rVert)$.

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([0.3, -0.1, 0.2])]]
new_params, state = trace(rule.module, params, grads, {"m": "m_t", "v": "v_t", "t": "t"}, lr=0.1)
step = new_params[0] - params[0]
print("step / ‖step‖ =", step / np.linalg.norm(step), "  -g / ‖g‖ =", -grads[0][0] / np.linalg.norm(grads[0][0]))

# %% [markdown]
# ## Trajectories against Adam
#
# As for LAMB, the trust ratio on a single 2-element tensor makes every step $\alpha\,\phi(\lVert\theta\rVert)$
# long. `force_adaptive_momentum=True` uses the adaptive direction from the first step on.

# %%
STEPS, LR = 400, 0.02
fig = trajectories(
    lambda problem: {
        f"RaLars (α = {LR})": run(rule.module, problem, STEPS, lr=LR),
        f"RaLars (α = {LR}, force_adaptive_momentum)": run(
            rule.module, problem, STEPS, lr=LR, force_adaptive_momentum=True
        ),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    f"RaLars against Adam, {STEPS} steps",
)
plt.show()

# %% [markdown]
# The step length is proportional to $\lVert\theta\rVert$, so RaLars stalls near the origin on Rosenbrock (the
# valley passes through it) and converges geometrically on the quadratic, whose minimum is the origin.
#
# ## The rectification switch
#
# The same fixed gradient sequence, whose coordinates differ in scale by 100×, is fed to RaLars with
# `force_adaptive_momentum` off and on. Left: the angle between each run's step and $-g_t$. Off, the first four
# steps follow momentum $\hat m_t$ (almost the gradient); on, they follow the unrectified adaptive direction
# $\hat m_t / \sqrt{\hat v_t}$ (far from the gradient when the coordinates' scales differ). Right: the angle
# between the two runs' steps. From step 5 ($\rho_t > 4$) both take $r_t \hat m_t / \sqrt{\hat v_t}$, the same
# direction, and the angle drops to zero.

# %%
rng = np.random.default_rng(0)
params = [np.array([1.0, 1.0, 1.0])]
grads = [[np.array([1.0, 0.1, 0.01]) * (1 + 0.3 * rng.standard_normal(3))] for _ in range(12)]


def angle(a, b):
    return np.degrees(np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0)))


steps = {}
for force in (False, True):
    thetas, _ = unroll(rule.module, params, grads, lr=0.01, force_adaptive_momentum=force)
    steps[force] = [b[0] - a[0] for a, b in pairwise(thetas)]

t = np.arange(1, len(grads) + 1)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
for force, label in ((False, "force_adaptive_momentum=False"), (True, "force_adaptive_momentum=True")):
    ax1.plot(t, [angle(s, -g[0]) for s, g in zip(steps[force], grads)], "o-", label=label)
ax2.plot(t, [angle(a, b) for a, b in zip(steps[False], steps[True])], "o-", color="C2")
for ax in (ax1, ax2):
    ax.axvline(4.5, color="k", ls="--", lw=1)
    ax.text(4.6, 0.7, r"$\rho_t > 4$: rectified", transform=ax.get_xaxis_transform(), va="top")
    ax.set(xlabel="step $t$", ylabel="angle (degrees)", xticks=t)
ax1.set_title(r"angle between the step $\theta_t - \theta_{t-1}$ and $-g_t$")
ax2.set_title("angle between the two runs' steps")
ax1.legend(loc="center right")
plt.show()

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.RaLars` in float64 against `reference.ralars` for 8 steps (across the switch), with
# weight decay, a clip, and both settings of the flag.

# %%
params, grads = random_grads([(3,), (2, 3)], steps=8, seed=2)
for force in (False, True):
    hp = dict(lr=0.05, weight_decay=0.1, scale_clip=(0.5, 2.0), force_adaptive_momentum=force)
    agreement(Optimizer, rule.module, params, grads, rule.state_fields(hp), **hp)
