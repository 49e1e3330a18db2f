"""The central test: every torch optimizer equals its reference after every step, parameters and every state
buffer, over drawn shapes, values, hyperparameters, step counts and param groups (holocron_torch.testing)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import strategies as st

import holocron_torch.optim as optim
from holocron_torch.optim import _base
from holocron_torch.testing import negated, strategies, verify, wrapped
from tests.registry import BASE, RULES, WRAPPED, torch_class

MODES = {
    "default": dict(),  # CPU: cache-sized foreach batches with host scalars (Python floats)
    "per-tensor": dict(foreach=False),
    "foreach": dict(foreach=True),
    "device-scalars": dict(foreach=True, device_scalars=True),  # 0-d tensor scalars, torch.where branches
    # the default path with every tensor of 4+ elements counted as large (alone in its batch, and taking the math
    # written for tensors that do not fit in cache, e.g. LARS' momentum without a temporary)
    "large-tensors": dict(large_from=4),
    "maximize": dict(maximize=True),
    "fused": dict(fused=True),  # the C++ CPU kernels (holocron_torch/optim/_fused), built on first use
    "fused-maximize": dict(fused=True, maximize=True),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", BASE)
def test_float64_matches_reference_every_step(name, mode, device, monkeypatch):
    if device != "cpu" and kw_needs_cpu(MODES[mode]):
        pytest.skip("the fused kernels are CPU-only")
    rule = RULES[name]
    cls, kw = torch_class(rule), dict(MODES[mode])
    if kw.pop("device_scalars", False):
        cls = device_scalars(cls)
    if "large_from" in kw:
        monkeypatch.setattr(_base, "CPU_BATCH_NUMEL", kw.pop("large_from"))
    ref = negated(rule.module) if kw.get("maximize") else rule.module
    verify(
        lambda groups: cls(groups, **kw),
        ref,
        hyperparameters=strategies.hyperparameters(rule),
        state=rule.state_fields,
        device=device,
    )


def kw_needs_cpu(kw: dict) -> bool:
    return bool(kw.get("fused"))


def device_scalars(cls: type) -> type:
    """``cls`` on the device-scalar path (0-d tensor scalars, no read-back: what CUDA, DTensor and torch.compile
    take) on any device, so that the CPU suite checks that path too."""
    return type(cls.__name__, (cls,), {"host_scalars": staticmethod(lambda params: False)})


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


# float32: the same engine, torch in float32 against the float64 reference fed the same float32-rounded inputs.
# Tolerance TOLERANCE[float32] = 2e-4, relative to each buffer's largest magnitude. Why: float32's unit roundoff
# is 6e-8; a step does ~10-20 roundings per element; the adaptive denominators amplify them (up to 1/√ε per
# step where v ≈ 0), and up to 10 steps accumulate. The comparison is on well-conditioned problems: element
# values 0 or |x| >= 1e-2, ε = 1e-6 and no weight decay. With coupled weight decay the gradient can cancel
# against λθ (g + λθ ≈ 0), and there float32 has no correct digits left to compare (seen: AdaBelief, m off by
# 7e-4 of its scale after θ drifted 2e-5 relative); float64 covers weight decay at 1e-10.
F32_ELEMENTS = st.one_of(st.floats(-3.0, 3.0).filter(lambda x: abs(x) > 1e-2), st.just(0.0))


@pytest.mark.parametrize("name", BASE)
def test_float32_matches_reference_within_documented_tolerance(name):
    rule = RULES[name]
    cls = torch_class(rule)
    hp = strategies.hyperparameters(rule, eps=1e-6, weight_decay=0.0)
    verify(
        cls,
        rule.module,
        hyperparameters=hp,
        state=rule.state_fields,
        dtype=torch.float32,
        max_steps=10,
        elements=F32_ELEMENTS,
    )


@pytest.mark.parametrize("beta2", [0.0, 0.5, 0.6, 0.61])
@pytest.mark.parametrize("mode", ["default", "device-scalars"])
def test_ralars_with_no_rectified_phase_matches_reference(beta2, mode):
    """β2 <= 0.6 gives ρ_∞ <= 4: ρ_t never exceeds 4, so the rectified direction is never taken, and its factor r_t,
    whose formula divides by ρ_∞ - 4, must not be computed (at β2 = 0.6 the host path raised ZeroDivisionError)."""
    rule = RULES["ralars"]
    cls, kw = torch_class(rule), dict(MODES[mode])
    if kw.pop("device_scalars", False):
        cls = device_scalars(cls)
    hp = st.sampled_from([0.0, 0.9]).flatmap(lambda b1: strategies.hyperparameters(rule, betas=(b1, beta2), eps=1e-8))
    verify(lambda groups: cls(groups, **kw), rule.module, hyperparameters=hp, state=rule.state_fields)
