"""A worked custom variant: Lion (Chen et al., 2023, arXiv:2302.06675), written once as NumPy equations and once
as a torch optimizer, and verified step for step with holocron_torch's harness.

    c_t = β1 m_{t-1} + (1 - β1) g_t
    θ_t = θ_{t-1} - α (sign(c_t) + λ θ_{t-1})
    m_t = β2 m_{t-1} + (1 - β2) g_t

From the repository root::

    holocron-optim verify examples.lion:Lion examples.lion:lion_reference --state m

or in Python (this is what ``tests/test_custom_variant.py`` runs)::

    from hypothesis import strategies as st
    from holocron_torch.testing import verify
    verify(Lion, lion_reference, hyperparameters=st.fixed_dictionaries({"lr": st.floats(1e-4, 0.1)}),
           state=("m",))

Lion keeps no ``step`` count, so its step is not compared (``compare_step=None``, the default, compares it only
where the optimizer keeps ``state[p]["step"]``). Had the torch side named its buffer differently, ``state={"m":
"exp_avg"}`` would map our field to its key; any failure is one ``Mismatch`` whose message ends with the failing
case (hyperparameters, shapes, values).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

__all__ = ["Lion", "lion_init", "lion_reference", "lion_step"]


# ---- the NumPy reference: one line per equation ---------------------------------------------------------
def lion_init(params, **hp):
    """m_0 = 0 for every tensor."""
    return SimpleNamespace(m=[np.zeros_like(p) for p in params], t=0)


def lion_step(params, grads, state, *, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
    """One Lion step over lists of float64 arrays: returns (new params, new state)."""
    b1, b2 = betas
    new_p, new_m = [], []
    for theta, g, m in zip(params, grads, state.m):
        c = b1 * m + (1 - b1) * g
        new_p.append(theta - lr * (np.sign(c) + weight_decay * theta))
        new_m.append(b2 * m + (1 - b2) * g)
    return new_p, SimpleNamespace(m=new_m, t=state.t + 1)


#: what the harness takes as a reference: any object (or module) with ``init`` and ``step``
lion_reference = SimpleNamespace(init=lion_init, step=lion_step)


# ---- the torch optimizer --------------------------------------------------------------------------------
class Lion(torch.optim.Optimizer):
    """Lion. ``sign_bug=True`` makes it subtly wrong (sign(0) taken as +1), for showing what the harness catches."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, sign_bug=False):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))
        self.sign_bug = sign_bug

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("m", torch.zeros_like(p))
                c = torch.lerp(m, p.grad, 1 - b1)
                update = c.sign() if not self.sign_bug else torch.where(c >= 0, 1.0, -1.0).to(p.dtype)
                p.add_(update + group["weight_decay"] * p, alpha=-group["lr"])
                m.lerp_(p.grad, 1 - b2)
