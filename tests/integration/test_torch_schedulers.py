"""torch's own schedulers that read ``optimizer.defaults`` (OneCycleLR and CyclicLR cycle the momentum, betas[0]
or ``momentum``, when the defaults hold one): over each optimizer they give the learning rates and momenta they
give over torch.optim.AdamW (the control), and the optimizer steps with them."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.integration._common import NAMES, beta1, build

SCHEDULERS: dict[str, Any] = {
    "OneCycleLR": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=8),
    "CyclicLR": lambda opt: torch.optim.lr_scheduler.CyclicLR(opt, base_lr=1e-3, max_lr=1e-2, step_size_up=3),
}


def trajectory(name: str, scheduler: str) -> list[tuple[float, float]]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = build(name, model.parameters())
    sched = SCHEDULERS[scheduler](opt)
    seen = []
    for _ in range(8):
        model(torch.randn(4, 3)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        (group,) = opt.param_groups
        seen.append((group["lr"], beta1(group)))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return seen


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("name", NAMES)
def test_torch_scheduler_reading_defaults(name: str, scheduler: str) -> None:
    """With its default ``cycle_momentum=True``: the same (lr, momentum) at each of 8 steps as over AdamW."""
    assert trajectory(name, scheduler) == trajectory("adamw", scheduler)
