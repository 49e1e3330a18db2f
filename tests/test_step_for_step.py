"""The central test: every torch optimizer equals its reference after every step, parameters and every state
buffer, over drawn shapes, values, hyperparameters, step counts and param groups (holocron_torch.testing)."""

from __future__ import annotations

import pytest

import holocron_torch.optim as optim
from holocron_torch.testing import negated, strategies, verify, wrapped
from tests.registry import BASE, RULES, WRAPPED, torch_class

MODES = {"per-tensor": dict(foreach=False), "foreach": dict(foreach=True), "maximize": dict(maximize=True)}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", BASE)
def test_float64_matches_reference_every_step(name, mode):
    rule = RULES[name]
    cls, kw = torch_class(rule), MODES[mode]
    ref = negated(rule.module) if kw.get("maximize") else rule.module
    verify(
        lambda groups: cls(groups, **kw), ref, hyperparameters=strategies.hyperparameters(rule), state=rule.state_fields
    )


@pytest.mark.parametrize(("wrapper", "base"), WRAPPED)
def test_wrappers_float64_match_reference_every_step(wrapper, base):
    w_rule, b_rule = RULES[wrapper], RULES[base]
    w_cls, b_cls = getattr(optim, w_rule.cls), torch_class(b_rule)
    ref = wrapped(w_rule.module, b_rule.module, [h.name for h in w_rule.hypers])
    hp = strategies.hyperparameters(b_rule).flatmap(
        lambda b: strategies.hyperparameters(w_rule).map(lambda w: {**b, **w})
    )
    verify(
        lambda groups: w_cls(b_cls(groups)),
        ref,
        hyperparameters=hp,
        state=lambda h: ("phi", *(f"base.{f}" for f in b_rule.state_fields(h))),
    )
