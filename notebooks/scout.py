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
# # Scout: Lookahead with a sync rate set by the fast steps' coherence
#
# Scout is holocron's variant of Lookahead; there is no paper, and holocron 0.3.0's rule is the definition, with
# one deliberate deviation ([docs/errata.md](../docs/errata.md), rows 37 and 38). Like Lookahead it wraps any
# optimizer, takes $k$ fast steps and then moves the slow weights $\phi$ toward the fast ones; but the rate
# $\rho$ of that move is computed from the $k$ fast steps themselves, per tensor and element, and never falls
# below `sync_rate`.
#
# With $k$ = `sync_period` $\ge 2$, $\alpha$ = `sync_rate`:
#
# $$
# \begin{aligned}
# &\phi_0 = \theta_0; \quad \text{each step: } \theta \leftarrow \text{base step}(\theta, g), \;
#   n \leftarrow n + 1, \\
# &\quad \text{remember } \theta \quad (H = [\phi, \theta_1, \dots, \theta_k]) \\
# &\text{if } n \bmod k = 0, \text{ for each tensor } j: \\
# &\quad D = (\theta_1 - \phi,\; \theta_2 - \theta_1,\; \dots,\; \theta_k - \theta_{k-1})
#   \qquad \text{(the } k \text{ fast steps, along time)} \\
# &\quad \mu = \operatorname{mean}_\text{time}(D), \quad s = \operatorname{std}_\text{time}(D) \text{ (divided by }
#   k - 1), \quad M = \max_\text{time} \lvert D - \mu \rvert \\
# &\quad c_j = \text{mean of } s / M \text{ over the unsteady elements, } M > 10^{-6} \max_\text{time}\lvert D\rvert \\
# &C = \text{mean of } c_j \text{ over the tensors with at least one unsteady element} \\
# &\rho = \max(1 - C, \alpha) \quad (\rho = \alpha \text{ when no tensor counts}) \\
# &\phi \leftarrow \phi + \rho\, (\theta - \phi), \quad \theta \leftarrow \phi, \quad H \leftarrow [\phi]
# \end{aligned}
# $$
#
# $s / M$ compares the typical deviation of the steps from their mean with the largest one: about 1 or more when
# the steps swing evenly (an oscillation), smaller when one step stands out. So $\rho = \max(1 - C, \alpha)$
# moves $\phi$ further when a period was dominated by a few large steps, and only by $\alpha$ when the fast
# weights oscillated.
#
# **Where this differs from holocron 0.3.0** ([docs/errata.md](../docs/errata.md)): row 37, an element whose $k$
# updates are identical has $M = 0$; holocron divides 0 by 0, gets $\rho$ = NaN and silently discards the
# period's progress (always for a frozen tensor, and for every $k = 1$). Here such steady elements are left out
# of the coherence, $\rho = \alpha$ when no tensor counts, and $k \ge 2$ is required. Row 38, $\rho$ is computed
# with tensor operations, without reading values back to the host.

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from holocron_torch import optim
from holocron_torch.study import (
    PROBLEMS,
    adam,
    agreement,
    describe,
    random_grads,
    run_torch,
    trace,
    trajectories,
    wrapper_rule,
)
from reference import RULES
from reference.scout import coherence, sync_rate_for

rule = RULES["scout"]
Wrapper = getattr(optim, rule.cls)
describe(rule)

# %% [markdown]
# ## The reference, one line per equation

# %%
print(inspect.getsource(rule.module))

# %% [markdown]
# ## Four steps, symbol by symbol
#
# Around LARS, with $k = 2$: `phi` is $\phi$, `history` is $H$, `n` is $n$, `base` is the LARS State. Steps 2
# and 4 sync. With two steps, each element's two steps deviate from their mean by the same amount, so
# $s / M = \sqrt 2$ for every element, $1 - C < 0$ and $\rho = \alpha$; the history restarts from the new $\phi$.

# %%
params = [np.array([1.0, -2.0, 0.5])]
grads = [[np.array([0.3, -0.1, 0.2])], [np.array([0.25, -0.05, 0.3])], [np.array([0.2, 0.0, 0.3])]]
grads.append([np.array([-0.1, 0.1, 0.0])])
symbols = {"phi": "φ", "n": "n", "history": "H", "base.v": "v_t of LARS", "base.t": "t of LARS"}
hp = dict(lr=0.1, momentum=0.9, sync_rate=0.5, sync_period=2)
new_params, state = trace(wrapper_rule("scout", "lars"), params, grads, symbols, **hp)

# %% [markdown]
# ## Trajectories against Adam
#
# Scout(Adam) and Lookahead(Adam), both `holocron_torch` wrappers around `torch.optim.Adam`, with $k = 6$, against
# Adam alone. With the default sync rate 0.5 the two wrappers coincide on these functions (the computed
# $1 - C$ stays below 0.5, see below); with sync rate 0.1, Scout's own rate shows: it syncs further than
# Lookahead's fixed 0.1, and makes more progress per period.

# %%
STEPS, LR = 400, 0.05
fig = trajectories(
    lambda problem: {
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
        "Scout(Adam), k = 6, sync rate 0.1": run_torch(
            lambda ps: Wrapper(torch.optim.Adam(ps, lr=LR), sync_rate=0.1), problem, STEPS
        ),
        "Lookahead(Adam), k = 6, sync rate 0.1": run_torch(
            lambda ps: optim.Lookahead(torch.optim.Adam(ps, lr=LR), sync_rate=0.1), problem, STEPS
        ),
        "Scout(Adam) = Lookahead(Adam), sync rate 0.5": run_torch(
            lambda ps: Wrapper(torch.optim.Adam(ps, lr=LR)), problem, STEPS
        ),
    },
    f"Scout against Lookahead and Adam, {STEPS} steps",
)
plt.show()

# %% [markdown]
# ## The sync rate, period by period
#
# At each sync, the rate Scout uses is `reference.scout.sync_rate_for` applied to the period's fast weights. The
# reference is functional, so the fast weights $\theta_k$ that the sync replaces can be recomputed from the
# State before the step. With sync rate 0.5 the computed $1 - C$ is almost always lower and $\rho = 0.5$, i.e.
# Lookahead; with 0.1 the adaptive part shows.

# %%
BASE, STEPS, K = "adan", 240, 6


def sync_rates(problem, sync_rate):
    """ρ at every sync of Scout(Adan) on ``problem``."""
    base_hp = {"lr": LR}
    hp = {**base_hp, "sync_rate": sync_rate, "sync_period": K}
    scout = wrapper_rule("scout", BASE)
    params = [problem.start.copy()]
    state, rates = scout.init(params, **hp), []
    for _ in range(STEPS):
        g = [problem.grad(params[0])]
        if (state.n + 1) % K == 0:  # this step syncs: the fast weights it replaces, then the rate
            fast, _ = RULES[BASE].module.step(params, g, state.base, **base_hp)
            rates.append(sync_rate_for([list(h) for h in zip(*state.history, fast)], sync_rate))
        params, state = scout.step(params, g, state, **hp)
    return np.array(rates)


fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
for ax, problem in zip(axes, PROBLEMS):
    for j, sync_rate in enumerate((0.5, 0.1)):
        rates = sync_rates(problem, sync_rate)
        ax.plot(np.arange(1, len(rates) + 1) * K, rates, "o-", ms=3, color=f"C{j}", label=f"ρ, sync rate {sync_rate}")
        ax.axhline(sync_rate, color=f"C{j}", ls=":", lw=1)
    ax.set(xlabel="step $t$ of the sync", ylabel=r"$\rho$", ylim=(0, 1), title=f"Scout(Adan) on {problem.name}")
    ax.legend()
plt.show()

# %% [markdown]
# ## The coherence of a period, and steady elements
#
# `reference.scout.coherence` gives $c_j$ for one tensor's history $[\phi, \theta_1, \dots, \theta_k]$, or `None`
# when every element is steady; `sync_rate_for` turns the tensors' coherences into $\rho$. Six fast steps of a
# one-element tensor, in five patterns: an oscillation gives $s/M > 1$ and $\rho = \alpha$; evenly growing steps
# give $s / M \approx 0.75$; one large step among small ones gives $s / M \approx 0.5$ and the largest $\rho$.
# A frozen tensor, or one whose steps are all equal (plain SGD with a constant gradient), has no coherence to
# measure: holocron 0.3.0 turned it into NaN and lost the period ([row 37](../docs/errata.md)); here it is left
# out, and alone it gives $\rho = \alpha$.

# %%
patterns = {
    "frozen": [0.0] * 6,
    "constant steps": [0.1] * 6,
    "oscillating": [0.1, -0.1] * 3,
    "growing evenly": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    "one large step": [0.1] * 5 + [1.0],
}
for name, steps in patterns.items():
    history = list(np.array([1.0]) + np.concatenate([[0.0], np.cumsum(steps)])[:, None])
    c, rho = coherence(history), sync_rate_for([history], 0.1)
    print(f"{name:<15} steps {steps}:  c_j = {c if c is None else round(c, 4)},  ρ = {rho:.4f}")

# %% [markdown]
# ## Reference and torch agree
#
# `holocron_torch.optim.Scout` around `holocron_torch.optim.Adan` and around `LAMB`, in float64, against
# `reference.scout` around the matching reference rule: $\phi$ and every base buffer, over 8 steps (two syncs
# with $k = 3$, with sync rate 0.1 so that the adaptive rate is in play).

# %%
params, grads = random_grads([(3,), (2, 3)], steps=8, seed=2)
for base in ("adan", "lamb"):
    base_rule = RULES[base]
    hp = dict(lr=0.05, weight_decay=0.1, sync_rate=0.1, sync_period=3)
    state = ("phi", *(f"base.{f}" for f in base_rule.state_fields(hp)))
    base_cls = getattr(optim, base_rule.cls)
    reference_rule = wrapper_rule("scout", base)
    agreement(lambda groups, c=base_cls: Wrapper(c(groups)), reference_rule, params, grads, state, **hp)
