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
# # holocron-torch: the rules at a glance
#
# Every update rule of holocron-torch exists twice: as plain float64 NumPy equations in `reference/` (one line
# per equation) and as a torch optimizer in `holocron_torch.optim`, tested step for step against the reference.
# The registry `reference.RULES` is the one list of rules; this notebook reads everything from it.
#
# One notebook per rule goes into the equations (corrected where the spec is wrong: see
# [docs/errata.md](../docs/errata.md)), traces a step symbol by symbol, compares trajectories with Adam, shows
# what the rule's own hyperparameters do, and checks torch against the reference. The last notebook,
# [custom_variant](custom_variant.py), writes a new rule and verifies it with `holocron_torch.testing`.

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from holocron_torch import optim
from holocron_torch.study import ROSENBROCK, adam, plot_losses, plot_paths, run, wrapper_rule
from reference import RULES

# %% [markdown]
# ## The registry

# %%
rows = [
    "| rule | class | paper | hyperparameters (defaults) | state per tensor |",
    "|---|---|---|---|---|",
]
for name, rule in RULES.items():
    hypers = ", ".join(f"`{h.name}={h.default!r}`" for h in rule.hypers)
    state = ", ".join(f"`{s}`" for s in (*rule.state, *rule.optional_state))
    kind = " (wrapper)" if rule.wrapper else ""
    cls = getattr(optim, rule.cls)
    rows.append(
        f"| [{name}]({name}.py) | `{cls.__module__}.{cls.__name__}`{kind} | {rule.paper} | {hypers} | {state} |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Every rule on Rosenbrock's function
#
# All rules start from the same point with the same learning rate and the registry's defaults, except for two
# settings that suit this problem (`OVERRIDES`: momentum for LARS, the adaptive direction from the first step
# for RaLars); the wrappers wrap Adan. Every run is the NumPy reference; `torch.optim.Adam` with the same
# learning rate is the dashed baseline in each panel.

# %%
STEPS, LR = 600, 0.02
OVERRIDES = {"lars": {"momentum": 0.9}, "ralars": {"force_adaptive_momentum": True}}
WRAPPER_BASE = "adan"
paths = {}
for name, rule in RULES.items():
    if rule.wrapper:
        paths[name] = run(wrapper_rule(name, WRAPPER_BASE), ROSENBROCK, STEPS, lr=LR)
    else:
        paths[name] = run(rule.module, ROSENBROCK, STEPS, lr=LR, **OVERRIDES.get(name, {}))
baseline = adam(ROSENBROCK, STEPS, LR)

start = tuple(ROSENBROCK.start.tolist())
print(f"Rosenbrock from {start}, lr {LR}, {STEPS} steps (wrappers around {WRAPPER_BASE})")
print(f"{'rule':<11}{'settings':<34}{'f(θ)':>11}{'‖θ - θ*‖':>11}")
for name, path in {**paths, "Adam": baseline}.items():
    wrapped = name in RULES and RULES[name].wrapper
    settings = str(OVERRIDES.get(name, f"around {WRAPPER_BASE}" if wrapped else ""))
    distance = np.linalg.norm(path[-1] - ROSENBROCK.minimum)
    print(f"{name:<11}{settings:<34}{ROSENBROCK.f(path[-1]):11.3e}{distance:11.3e}")

# %%
fig, axes = plt.subplots(2, 5, figsize=(20, 8), layout="constrained", sharex=True, sharey=True)
for ax, (name, path) in zip(axes.flat, paths.items()):
    plot_paths(ROSENBROCK, {"Adam": baseline, RULES[name].cls: path}, ax, styles={"Adam": {"ls": "--", "color": "k"}})
    ax.set_title(RULES[name].cls)
    ax.legend(fontsize=8, loc="lower right")
    ax.label_outer()
fig.suptitle(f"Paths on Rosenbrock's function, {STEPS} steps, lr {LR}")
plt.show()

fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
# alternate solid and dashed lines, so that runs which coincide (see below) stay visible
styles = {"Adam": {"ls": ":", "color": "k", "lw": 2}}
styles.update({RULES[n].cls: {"color": f"C{i}", "ls": "-" if i % 2 == 0 else "--"} for i, n in enumerate(paths)})
plot_losses(ROSENBROCK, {**{RULES[n].cls: p for n, p in paths.items()}, "Adam": baseline}, ax, styles)
ax.set_title(f"Every rule on Rosenbrock's function: loss, {STEPS} steps, lr {LR}")
ax.legend(ncols=2, fontsize=8)
plt.show()

# %% [markdown]
# Some runs coincide: AdamP on a vector is Adam (it projects only tensors with at least 2 dims); LAMB and RaLars
# (with the forced adaptive direction) take the same normalised steps once the rectification starts; and Scout's
# computed sync rate stays below 0.5 here, so it syncs at `sync_rate` exactly as Lookahead does.
#
# These are toy runs, not a benchmark: each rule's strength is in its own setting (layer-wise scaling for
# LARS/LAMB/RaLars, robustness to outliers for TAdam, scale-invariant weights for AdamP, long memory for
# AdEMAMix...), which the per-rule notebooks show. On a single 2-element tensor the trust-ratio rules take steps
# proportional to $\lVert\theta\rVert$, and Rosenbrock's valley passes through the origin, where those steps
# vanish.
