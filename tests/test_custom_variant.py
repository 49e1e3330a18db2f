"""The README's worked example: a user's own rule (Lion, arXiv:2302.06675) verified with the public harness,
and a deliberately wrong copy that the harness catches with a shrunk counterexample."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from holocron_torch.testing import Mismatch, verify


# ---- the user's NumPy reference: one line per equation --------------------------------------------------
def lion_init(params, **hp):
    return SimpleNamespace(m=[np.zeros_like(p) for p in params], t=0)


def lion_step(params, grads, state, *, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
    b1, b2 = betas
    new_p, new_m = [], []
    for theta, g, m in zip(params, grads, state.m):
        c = b1 * m + (1 - b1) * g
        new_p.append(theta - lr * (np.sign(c) + weight_decay * theta))
        new_m.append(b2 * m + (1 - b2) * g)
    return new_p, SimpleNamespace(m=new_m, t=state.t + 1)


lion_reference = SimpleNamespace(init=lion_init, step=lion_step)


# ---- the user's torch optimizer -------------------------------------------------------------------------
class Lion(torch.optim.Optimizer):
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


HYPER = st.fixed_dictionaries(
    {
        "lr": st.floats(1e-4, 0.1),
        "betas": st.tuples(st.floats(0, 0.99), st.floats(0, 0.999)),
        "weight_decay": st.floats(0, 0.1),
    }
)


def test_lion_matches_its_reference():
    verify(Lion, lion_reference, hyperparameters=HYPER, state=("m",), compare_step=False)


def test_a_wrong_lion_is_caught_with_a_counterexample():
    with pytest.raises(Mismatch, match="parameter"):
        verify(
            lambda groups: Lion(groups, sign_bug=True),
            lion_reference,
            hyperparameters=HYPER,
            state=("m",),
            compare_step=False,
        )
