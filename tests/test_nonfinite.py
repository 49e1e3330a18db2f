"""The non-finite input policy (docs/reliability.md, "Non-finite inputs"): a NaN or an inf in a gradient, in a state
buffer or in lr is never checked for inside step() (that would be a host sync, as torch.optim) and never dropped or
replaced: it propagates through the rule's equations with IEEE arithmetic, as in the float64 reference, on every
path. So the same elements end non-finite (NaN or inf) as in the reference (an elementwise rule: the elements it
touched, as torch.optim.AdamW; a rule with a per-tensor norm or sum: its whole tensor, since a non-finite norm or
sum makes a NaN trust ratio or TAdam weight), the other elements and tensors equal the reference, and the paths
agree with each other."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.registry import BASE
from tests.test_extremes import PATHS, run_path, run_reference, target

#: per rule, settings that reach its reductions and branches (weight decay, momentum, amsgrad, projection)
OPTIONS = {
    "lars": dict(momentum=0.9, weight_decay=0.01),
    "lamb": dict(weight_decay=0.01),
    "ralars": dict(weight_decay=0.01),
    "tadam": dict(weight_decay=0.01, amsgrad=True),
    "adabelief": dict(weight_decay=0.01, amsgrad=True),
    "adamp": dict(weight_decay=0.01, delta=10.0),
    "adan": dict(weight_decay=0.01, amsgrad=True),
    "ademamix": dict(weight_decay=0.01),
}
TARGETS = BASE + ["lookahead:lamb", "scout:adan"]
BAD = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}


def _case(name: str, bad: float, where: str) -> dict:
    rng = np.random.default_rng(0)
    base = name.split(":")[-1]
    hp = {"lr": 1e-2, **OPTIONS[base]}
    if ":" in name:
        hp.update(sync_rate=0.5, sync_period=2)
    params = [rng.standard_normal((2, 3)), rng.standard_normal(4)]
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(3)]
    if where == "gradient":
        grads[1][0][0, 1] = bad  # step 2, tensor 0, one element
    return dict(dtype=torch.float64, hp=hp, params=params, grads=grads, maximize=False)


def _compare(name: str, expected: list, results: dict) -> None:
    for t, step in enumerate(expected):
        for i, exp in enumerate(step):
            for key, e in exp.items():
                for path, res in results.items():
                    a = res[t][i][key]
                    where = f"{name} path {path!r}, step {t + 1}, tensor {i}, {key}"
                    # the same elements non-finite; NaN or inf may differ (an EMA as a lerp, torch.optim.AdamW's
                    # form, turns m = inf into NaN at the next step, where β m + (1 - β) g keeps inf)
                    np.testing.assert_array_equal(np.isfinite(a), np.isfinite(e), err_msg=f"non-finite: {where}")
                    ok = np.isfinite(e)
                    np.testing.assert_allclose(a[ok], e[ok], rtol=1e-10, atol=1e-12, err_msg=where)


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name", TARGETS)
def test_a_non_finite_gradient_propagates_as_in_the_reference_on_every_path(name, bad):
    build, ref, _, fields = target(name)
    case = _case(name, BAD[bad], "gradient")
    case["fields"] = fields(case["hp"])
    expected = run_reference(ref, case)
    results = {path: run_path(build, case, kw) for path, kw in PATHS.items()}
    assert not np.all(np.isfinite(expected[1][0]["parameter"])), "the reference must see the non-finite input"
    assert np.all(np.isfinite(expected[1][1]["parameter"])), "another tensor is never touched"
    _compare(name, expected, results)


class _Poisoned:
    """A reference whose state buffer ``field`` of tensor 0 gets ``bad`` at element 0 after step 1."""

    def __init__(self, ref, field: str, bad: float) -> None:
        self.ref, self.field, self.bad, self.n = ref, field, bad, 0

    def init(self, params, **hp):
        return self.ref.init(params, **hp)

    def step(self, params, grads, state, **hp):
        params, state = self.ref.step(params, grads, state, **hp)
        self.n += 1
        if self.n == 1:
            buf = np.array(getattr(state, self.field)[0], dtype=np.float64)
            buf.reshape(-1)[0] = self.bad
            getattr(state, self.field)[0] = buf
        return params, state


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name", BASE)
def test_a_non_finite_state_buffer_propagates_as_in_the_reference_on_every_path(name, bad):
    build, ref, _, fields = target(name)
    case = _case(name, BAD[bad], "state")
    case["fields"] = fields(case["hp"])
    field = case["fields"][0]
    expected = run_reference(_Poisoned(ref, field, BAD[bad]), case)
    results = {}
    for path, kw in PATHS.items():

        def poisoned(groups, kw, field=field):
            opt = build(groups, kw)
            original = opt.step

            def step(closure=None):
                out = original(closure)
                p = opt.param_groups[0]["params"][0]
                if int(opt.state[p]["step"]) == 1:
                    opt.state[p][field].view(-1)[0] = BAD[bad]
                return out

            opt.step = step
            return opt

        results[path] = run_path(poisoned, case, kw)
    _compare(name, expected, results)


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name", BASE)
def test_a_non_finite_lr_propagates_as_in_the_reference_on_every_path(name, bad):
    build, ref, _, fields = target(name)
    case = _case(name, math.nan, "lr")
    case["fields"] = fields(case["hp"])
    case["grads"] = case["grads"][:1]
    case["hp"] = {**case["hp"], "lr": BAD[bad]}  # what a scheduler or a user may write into a group after validation
    expected = run_reference(ref, case)
    results = {}
    for path, kw in PATHS.items():

        def unvalidated(groups, kw):
            lr = groups[0]["lr"]
            groups[0]["lr"] = 1e-2
            opt = build(groups, kw)
            opt.param_groups[0]["lr"] = lr
            return opt

        results[path] = run_path(unvalidated, case, kw)
    _compare(name, expected, results)


def test_adamw_propagates_a_nan_gradient_into_the_element_and_its_state_only():
    # the control the policy follows: torch.optim.AdamW neither checks nor drops a NaN, elementwise
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = torch.optim.AdamW([p], lr=1e-2, weight_decay=0.01)
    p.grad = torch.tensor([math.nan, 1.0, 1.0], dtype=torch.float64)
    opt.step()
    assert torch.isnan(p[0]) and torch.isfinite(p[1:]).all()
    assert torch.isnan(opt.state[p]["exp_avg"][0]) and torch.isnan(opt.state[p]["exp_avg_sq"][0])
