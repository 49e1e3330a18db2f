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
# # Lookahead: k fast steps forward, then a step back toward the slow weights
#
# Lookahead (Zhang, Lucas, Hinton & Ba, 2019, [arXiv:1907.08610](https://arxiv.org/abs/1907.08610),
# Algorithm 1) wraps any optimizer. The inner ("fast") optimizer takes $k$ steps; then the slow weights $\phi$
# move a fraction $\alpha$ of the way toward where the fast weights ended, and the fast weights restart from
# there. Oscillations of the fast weights partly cancel in $\phi$, which makes the method less sensitive to the
# inner optimizer's learning rate.
#
# $$
# \begin{aligned}
# &\phi_0 = \theta_0 \qquad \text{(a copy of the initial parameters)} \\
# &\text{each step: } \theta \leftarrow \text{base step}(\theta, g), \quad n \leftarrow n + 1 \\
# &\text{if } n \bmod k = 0: \quad \phi \leftarrow \phi + \alpha\, (\theta - \phi), \quad \theta \leftarrow \phi
# \end{aligned}
# $$
#
# $\alpha$ = `sync_rate` in $(0, 1]$, $k$ = `sync_period`. The base optimizer's own state (momenta) is left as
# it is at a sync.
#
# **Where this differs from holocron 0.3.0** ([docs/errata.md](../docs/errata.md)): row 34, $\phi_0 = \theta_0$ as
# in the paper; row 35, the wrapper's `param_groups` *are* the base optimizer's (so an LR scheduler reaches the
# base lr) and `state_dict()` works (holocron 0.3.0's raises on torch 2.13); row 36, `sync_rate` is a float in
# $(0, 1]$ (0 would never make progress and is refused).

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from holocron_torch import optim
from holocron_torch.study import (
    PROBLEMS,
    QUADRATIC,
    adam,
    agreement,
    describe,
    plot_losses,
    plot_paths,
    random_grads,
    run,
    run_torch,
    trace,
    trajectories,
    wrapper_rule,
)
from reference import RULES

rule = RULES["lookahead"]
Wrapper = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation
#
# A wrapper's reference takes the base rule's module and hyperparameters; `holocron_torch.testing.wrapped` turns
# the pair into a single rule with one hyperparameter dict (`holocron_torch.study.wrapper_rule` builds it from
# the registry).

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## Three steps, symbol by symbol
#
# Around LARS (whose state is one buffer, `v`), with $k = 2$: `phi` is $\phi$, `n` is $n$, `base` is the LARS
# State. After step 1, $\phi = \theta_0$ still; step 2 syncs: $\theta$ and $\phi$ become
# $\phi + \alpha(\theta_2^{\text{fast}} - \phi)$; LARS's buffer `base.v` is untouched by the sync.

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([0.3, -0.1, 0.2])], [np.array([0.25, -0.05, 0.3])], [np.array([0.2, 0.0, 0.3])]]
symbols = {"phi": "φ", "n": "n", "base.v": "v_t of LARS", "base.t": "t of LARS"}
hp = dict(lr=0.1, momentum=0.9, sync_rate=0.5, sync_period=2)
new_params, state = trace(wrapper_rule("lookahead", "lars"), params, grads, symbols, **hp)

# %% [markdown]
# ## Trajectories against Adam
#
# `holocron_torch.optim.Lookahead` wraps any `torch.optim.Optimizer`, so the cleanest comparison is
# Lookahead(Adam) against Adam itself (torch, same $\alpha = 0.05$), with the defaults $k = 6$, sync rate 0.5.
# The reference side is shown wrapping Adan (`reference.adan`), against Adan alone.

# %%
STEPS, LR = 400, 0.05
fig = trajectories(
    lambda problem: {
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
        "Lookahead(Adam), k = 6, sync rate 0.5": run_torch(
            lambda ps: Wrapper(torch.optim.Adam(ps, lr=LR)), problem, STEPS
        ),
        f"Adan (α = {LR})": run(RULES["adan"].module, problem, STEPS, lr=LR),
        "Lookahead(Adan), k = 6, sync rate 0.5": run(wrapper_rule("lookahead", "adan"), problem, STEPS, lr=LR),
    },
    f"Lookahead against its base optimizers, {STEPS} steps",
)
plt.show()

# %% [markdown]
# With sync rate 0.5 the slow weights keep only part of each period's progress, so a wrapped optimizer is slower
# where its base is steady: down Rosenbrock's valley both wrapped runs are behind their base. Near the
# quadratic's minimum, Lookahead(Adam) ends lower than Adam; Lookahead(Adan) oscillates about as Adan does
# (Adan's heavy momentum, left untouched by the syncs, carries the oscillation).
#
# ## The sync, close up
#
# Adam with a large learning rate ($\alpha = 0.3$) oscillates across the quadratic's narrow valley. Wrapped in
# Lookahead ($k = 6$), each period's zig-zag is pulled back toward the slow weights (the dots mark $\phi$ after
# each sync). Right: the loss for a few $(\alpha, k)$; sync rate 1 is the base optimizer exactly (dashed, on
# top of Adam).

# %%
LR, STEPS = 0.3, 120
paths = {f"Adam (α = {LR})": adam(QUADRATIC, STEPS, LR)}
for sync_rate, k in ((0.5, 6), (0.5, 12), (0.8, 6), (1.0, 6)):
    paths[f"Lookahead(Adam), sync rate {sync_rate}, k = {k}"] = run_torch(
        lambda ps, a=sync_rate, k=k: Wrapper(torch.optim.Adam(ps, lr=LR), sync_rate=a, sync_period=k), QUADRATIC, STEPS
    )
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
shown = dict(list(paths.items())[:2])
plot_paths(QUADRATIC, shown, ax1)
syncs = list(shown.values())[1][6::6]
ax1.plot(syncs[:, 0], syncs[:, 1], "o", color="C1", ms=4, label="φ after each sync")
ax1.legend(fontsize=8, loc="lower right")
ax1.set_title(f"quadratic, Adam (α = {LR}) and Lookahead(Adam), first {STEPS} steps")
plot_losses(QUADRATIC, paths, ax2, styles={"Lookahead(Adam), sync rate 1.0, k = 6": {"ls": "--", "color": "k"}})
ax2.legend(fontsize=8)
plt.show()
gap = np.max(np.abs(paths["Lookahead(Adam), sync rate 1.0, k = 6"] - paths[f"Adam (α = {LR})"]))
print(f"max |Lookahead(Adam, sync rate 1) - Adam| over the path: {gap:.2e}")

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.Lookahead` around `holocron_torch.optim.Adan` and around `LAMB`, in float64, against
# `reference.lookahead` around the matching reference rule. The state compared is $\phi$ and every buffer of the
# base optimizer (`base.*`), over 8 steps (two syncs with $k = 3$).

# %%
params, grads = random_grads([(3,), (2, 3)], steps=8, seed=2)
for base in ("adan", "lamb"):
    base_rule = RULES[base]
    hp = dict(lr=0.05, weight_decay=0.1, sync_rate=0.4, sync_period=3)
    state = ("phi", *(f"base.{f}" for f in base_rule.state_fields(hp)))
    base_cls = getattr(optim, base_rule.cls)
    reference_rule = wrapper_rule("lookahead", base)
    agreement(lambda groups, c=base_cls: Wrapper(c(groups)), reference_rule, params, grads, state, **hp)

# %% [markdown]
# The same holds on both test functions over a long run:

# %%
for problem in PROBLEMS:
    torch_path = run_torch(lambda ps: Wrapper(optim.Adan(ps, lr=0.05)), problem, 400)
    gap = np.max(np.abs(torch_path - run(wrapper_rule("lookahead", "adan"), problem, 400, lr=0.05)))
    print(f"{problem.name}: max |torch - reference| over 400 steps = {gap:.2e}")
