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
# # Write and verify your own variant
#
# `holocron_torch.testing` is the harness holocron-torch's own suite runs on. You write a rule twice, once as
# NumPy (`init`/`step`, float64, one line per equation) and once as a torch optimizer, and `verify` lets
# Hypothesis generate scenarios (shapes, values, hyperparameters, 1-20 steps, one or two param groups) and
# compare the two after every step: the parameters, every state buffer you name, and the step count.
#
# The variant here is **AdaBeliefW**: AdaBelief with *decoupled* weight decay (as AdamW is to Adam) instead of
# the spec's coupled L2. Both halves reuse the library: the NumPy rule calls `reference.adabelief` with
# $\lambda = 0$, the torch optimizer calls holocron-torch's AdaBelief kernel with $\lambda = 0$; each adds only
# the one new equation,
#
# $$
# \theta_t = \theta_{t-1} - \alpha\, \frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon} - \alpha \lambda\, \theta_{t-1}
# $$
#
# where $\hat m_t, \hat s_t$ are AdaBelief's (see [adabelief](adabelief.py)) computed from $g_t$ alone. The
# worked example of the README, Lion written from scratch, is `examples/lion.py` (tested in
# `tests/test_custom_variant.py`).

# %%
import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from holocron_torch import optim
from holocron_torch.optim.adabelief import adabelief as adabelief_kernel
from holocron_torch.study import adam, agreement, random_grads, run, run_torch, trajectories
from holocron_torch.testing import Case, Mismatch, run_case, strategies, variants, verify
from reference import RULES, adabelief, tadam

# a quick, reproducible Hypothesis profile for a notebook: no example database written to disk, and no
# "explain" phase (it traces the code under test, which is slow)
settings.register_profile(
    "notebook",
    max_examples=30,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("notebook")

# %% [markdown]
# ## The NumPy rule
#
# A reference rule is anything with `init(params, **hp) -> State` and `step(params, grads, state, **hp) ->
# (params, State)`, whose State fields hold one array per parameter tensor (`t` the step count).

# %%


def adabeliefw_init(params, **hp):
    return adabelief.init(params)


def adabeliefw_step(params, grads, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    stepped, state = adabelief.step(params, grads, state, lr=lr, betas=betas, eps=eps, weight_decay=0.0)
    # the new equation: θ_t = (AdaBelief's step from θ_{t-1}) - α λ θ_{t-1}
    return [new - lr * weight_decay * np.asarray(old) for new, old in zip(stepped, params)], state


adabeliefw_reference = SimpleNamespace(init=adabeliefw_init, step=adabeliefw_step)

# %% [markdown]
# ## The torch optimizer
#
# Shrinking $\theta$ by $(1 - \alpha\lambda)$ *before* AdaBelief's step is the same equation, since with
# $\lambda = 0$ AdaBelief's step does not read $\theta$. `decay_after=True` is the deliberate bug for later: it
# shrinks *after* the step, $\theta_t = (1 - \alpha\lambda)(\theta_{t-1} - \alpha u_t)$, off by
# $\alpha^2 \lambda u_t$, a subtle error of the kind that survives casual testing.

# %%


class AdaBeliefW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *, decay_after=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.decay_after = decay_after

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            shrink = 1 - group["lr"] * group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["m"] = torch.zeros_like(p)
                    state["s"] = torch.zeros_like(p)
                if not self.decay_after:
                    p.mul_(shrink)
                state["step"] += 1  # the list function takes t already advanced: a Python number, or a 0-d tensor
                adabelief_kernel(
                    [p],
                    [p.grad],
                    [state["m"]],
                    [state["s"]],
                    [state["step"].item()],
                    lr=group["lr"],
                    betas=group["betas"],
                    eps=group["eps"],
                    weight_decay=0.0,
                    amsgrad=False,
                )
                if self.decay_after:
                    p.mul_(shrink)


# %% [markdown]
# ## Side by side, by hand
#
# The two halves on the same tiny scenario first (the helper prints the largest difference after every step).

# %%
params, grads = random_grads([(3,), (2, 3)], steps=5, seed=2)
agreement(AdaBeliefW, adabeliefw_reference, params, grads, ("m", "s"), lr=0.05, weight_decay=0.1)

# %% [markdown]
# ## Verified with Hypothesis
#
# `verify` draws the scenarios; `hyperparameters` says what each param group may hold. A run that passes prints
# nothing.

# %%
HYPER = st.fixed_dictionaries(
    {
        "lr": st.floats(1e-4, 0.1),
        "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.999)),
        "weight_decay": st.floats(0.0, 0.1),
    }
)
verify(AdaBeliefW, adabeliefw_reference, hyperparameters=HYPER, state=("m", "s"))
print("AdaBeliefW matches its reference on every drawn scenario")

# %% [markdown]
# ## A broken version is caught
#
# The same check on the `decay_after=True` optimizer. Hypothesis finds a failing scenario, shrinks it to a
# small one and attaches it to the error (the "Failing test case" printed below the message); the `Mismatch`
# says which step, group, tensor and buffer differ, with the expected and the actual value. Here the shrunk case
# is a single scalar with $\beta_1 = 0$, where AdaBelief's first step is huge ($s_1 = \epsilon$), so the
# $\alpha^2\lambda u_t$ error is large.

# %%
try:
    verify(
        lambda groups: AdaBeliefW(groups, decay_after=True),
        adabeliefw_reference,
        hyperparameters=HYPER,
        state=("m", "s"),
    )
except Mismatch as error:
    print("caught:", error)
    for note in getattr(error, "__notes__", []):  # Hypothesis attaches the shrunk scenario to the error
        print(note)
else:
    raise AssertionError("the broken optimizer was not caught")

# %% [markdown]
# ## What decoupling changes
#
# Coupled L2 (holocron-torch's AdaBelief with `weight_decay`) puts $\lambda\theta$ into the gradient, where
# AdaBelief's normalisation rescales it; decoupled decay shrinks $\theta$ by the same fraction $\alpha\lambda$
# every step, whatever the gradients. With a large $\lambda = 1$ the difference is plain. The loss shown is the
# unregularised $f$: on the quadratic, whose minimum is the origin, the decoupled decay speeds convergence up; on
# Rosenbrock it holds $\theta$ near the origin, where the shrinking balances the gradient, away from $(1, 1)$.
# The torch optimizer's path (dashed) lies on the NumPy rule's.

# %%
STEPS, LR, WD = 400, 0.05, 1.0
fig = trajectories(
    lambda problem: {
        f"AdaBeliefW (α = {LR}, λ = {WD})": run(adabeliefw_reference, problem, STEPS, lr=LR, weight_decay=WD),
        f"AdaBeliefW, torch (α = {LR}, λ = {WD})": run_torch(
            lambda ps: AdaBeliefW(ps, lr=LR, weight_decay=WD), problem, STEPS
        ),
        f"AdaBelief, coupled L2 (α = {LR}, λ = {WD})": run_torch(
            lambda ps: optim.AdaBelief(ps, lr=LR, weight_decay=WD), problem, STEPS
        ),
        f"Adam (α = {LR})": adam(problem, STEPS, LR),
    },
    "A custom variant against the library's AdaBelief",
    styles={f"AdaBeliefW, torch (α = {LR}, λ = {WD})": {"ls": "--", "color": "k", "lw": 1}},
)
plt.show()

# %% [markdown]
# ## Someone else's optimizer, in a few lines
#
# The same harness verifies an optimizer nobody wrote for it, against one of *our* rules, without retyping the rule:
# map our state fields to its keys (`state={"m": "exp_avg", ...}`, or `read_state=` where it stores a transform),
# and compose its conventions onto our rule with `holocron_torch.testing.variants`. Here the third party is
# torch.optim itself. Our TAdam with $\nu = \infty$ (`dof=inf`) is exactly Adam with coupled L2 ($w_t = 1$, so $m_t$
# is the plain $\beta_1$-EMA), so `torch.optim.Adam` must equal it; `torch.optim.AdamW` must equal it with the decay
# moved out of the gradient (`variants.decay(..., "decoupled")`: $\theta_t = \theta'_t - \alpha\lambda\theta_{t-1}$).

# %%
adam_rule = variants.fixed(tadam, dof=math.inf)  # TAdam at ν = ∞: Adam
TORCH_KEYS = {"m": "exp_avg", "v": "exp_avg_sq"}  # our field -> torch.optim's state key
HP = strategies.hyperparameters(RULES["tadam"], dof=math.inf, amsgrad=False)  # the registry's valid ranges

verify(torch.optim.Adam, adam_rule, hyperparameters=HP, state=TORCH_KEYS, max_steps=5)
verify(torch.optim.AdamW, variants.decay(adam_rule, "decoupled"), hyperparameters=HP, state=TORCH_KEYS, max_steps=5)
print("torch.optim.Adam = our TAdam at ν = ∞; torch.optim.AdamW = the same with decoupled decay")

# %% [markdown]
# Without the variant, AdamW is not our rule, and the `Mismatch` says where (here on one fixed case, `run_case`,
# the single scenario `verify` draws many of):

# %%
params, grads = random_grads([(3,), (2, 3)], steps=2, seed=0)
case = Case(params=params, grads=grads, groups=[([0, 1], {"lr": 0.05, "weight_decay": 0.1})])
try:
    run_case(torch.optim.AdamW, adam_rule, case, state=TORCH_KEYS)
except Mismatch as error:
    print(str(error).splitlines()[0])

# %% [markdown]
# The libraries' own implementations of our rules (timm, pytorch_optimizer, torch-optimizer, heavyball and the
# authors' packages) are verified the same way by `make audit` (tools/audit.py), which installs them as audit-only
# dependencies; its matrix, with each peer's conventions and deviations, is `docs/conformance.md`. One row of it, as
# you would write it:
#
# ```python
# import pytorch_optimizer
# from reference import adabelief
#
# verify(
#     pytorch_optimizer.AdaBelief,  # decoupled (AdamW-style) weight decay by default
#     variants.decay(adabelief, "decoupled"),
#     hyperparameters=strategies.hyperparameters(RULES["adabelief"], amsgrad=False),
#     state={"m": "exp_avg", "s": "exp_avg_var"},
# )
# ```
