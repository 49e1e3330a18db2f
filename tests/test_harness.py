"""holocron_torch.testing's API for optimizers nobody wrote for it: renamed and transformed state, the p.grad check,
the step count, one Mismatch for every failure (with the failing case), constructor-level hyperparameters, group and
shape controls, the variants, and the CLI's ``verify``. The third-party optimizer here is torch.optim's own Adam /
AdamW (renamed buffers ``exp_avg``/``exp_avg_sq``); the peers of docs/conformance.md are audit-only (``make audit``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st

from holocron_torch import optim
from holocron_torch.cli import main
from holocron_torch.testing import Case, Mismatch, run_case, variants, verify, wrapped
from reference import adabelief, lamb, lookahead


# ---- a reference Adam, as a user would write it (coupled L2, as torch.optim.Adam) ---------------------------------
def adam_init(params, **hp):
    return SimpleNamespace(m=[np.zeros_like(p) for p in params], v=[np.zeros_like(p) for p in params], t=0)


def adam_step(params, grads, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    t, new_p, new_m, new_v = state.t + 1, [], [], []
    for theta, g, m, v in zip(params, grads, state.m, state.v):
        g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        new_p.append(theta - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
        new_m.append(m)
        new_v.append(v)
    return new_p, SimpleNamespace(m=new_m, v=new_v, t=t)


adam_reference = SimpleNamespace(init=adam_init, step=adam_step)
ADAM_KEYS = {"m": "exp_avg", "v": "exp_avg_sq"}
HYPER = st.fixed_dictionaries(
    {
        "lr": st.floats(1e-4, 0.1),
        "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.999)),
        "eps": st.floats(1e-10, 1e-6),
        "weight_decay": st.floats(0.0, 0.1),
    }
)


@pytest.fixture
def few_examples():
    """A failure is found in the first few scenarios: these tests need no more than 15."""
    previous = settings.get_current_profile_name()
    settings.register_profile("harness-few", settings(settings.get_profile(previous), max_examples=15))
    settings.load_profile("harness-few")
    yield
    settings.load_profile(previous)


def one_case(hp: dict | None = None, steps: int = 2) -> Case:
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(steps)]
    return Case(params=params, grads=grads, groups=[([0, 1], {"lr": 0.01, **(hp or {})})])


# ---- renamed, transformed, nested state ---------------------------------------------------------------------------
def test_torch_adam_matches_a_reference_adam_with_renamed_buffers():
    verify(torch.optim.Adam, adam_reference, hyperparameters=HYPER, state=ADAM_KEYS, max_steps=6)  # + step count


def test_a_missing_key_lists_the_optimizers_keys():
    with pytest.raises(Mismatch) as caught:
        run_case(torch.optim.Adam, adam_reference, one_case(), state=("m", "v"))
    text = str(caught.value)
    assert "state key 'm' is missing" in text and "['exp_avg', 'exp_avg_sq', 'step']" in text
    assert "step 1, group 0, tensor 0" in text


class NestedNegatedAdam(torch.optim.Adam):
    """Adam that also keeps its first moment negated and nested, as some peers store a transform."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["inner"] = {"neg_m": -self.state[p]["exp_avg"], "v": self.state[p]["exp_avg_sq"]}


def read_nested(opt, p):
    return {"m": -opt.state[p]["inner"]["neg_m"], "v": opt.state[p]["inner"]["v"]}


def test_read_state_reads_transformed_nested_buffers():
    run_case(NestedNegatedAdam, adam_reference, one_case(), read_state=read_nested)
    wrong = lambda opt, p: {"m": opt.state[p]["inner"]["neg_m"]}  # noqa: E731 (forgot the sign: caught)
    with pytest.raises(Mismatch, match="state 'm'"):
        run_case(NestedNegatedAdam, adam_reference, one_case(), read_state=wrong)


# ---- p.grad, step count -------------------------------------------------------------------------------------------
class L2IntoGrad(torch.optim.Adam):
    """Coupled decay ``l2`` added into p.grad in place (as several peers do), then Adam without decay."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad.add_(p, alpha=group["l2"])
        return super().step(closure)


class FreesGrad(torch.optim.Adam):
    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


def adam_l2_step(params, grads, state, *, l2, **hp):
    return adam_step(params, grads, state, weight_decay=l2, **hp)


def test_the_grad_check_reports_and_can_be_switched_off():
    ref = SimpleNamespace(init=adam_init, step=adam_l2_step)
    with pytest.raises(Mismatch, match=r"changed p\.grad of tensor 0 in place"):
        run_case(L2IntoGrad, ref, one_case({"l2": 0.05}), state=ADAM_KEYS)
    run_case(L2IntoGrad, ref, one_case({"l2": 0.05}), state=ADAM_KEYS, check_grads=False)
    with pytest.raises(Mismatch, match=r"set p\.grad of tensor 0 to None"):  # not a bare TypeError
        run_case(FreesGrad, adam_reference, one_case(), state=ADAM_KEYS)
    run_case(FreesGrad, adam_reference, one_case(), state=ADAM_KEYS, check_grads=False)


def test_compare_step_defaults_to_where_the_optimizer_keeps_one():
    from examples.lion import Lion, lion_reference

    class StaleStep(Lion):
        """Lion that keeps a step count and never advances it (nothing else wrong)."""

        def step(self, closure=None):
            super().step(closure)
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p]["step"] = torch.tensor(0.0)

    run_case(torch.optim.Adam, adam_reference, one_case(), state=ADAM_KEYS)  # None: compared, and right
    with pytest.raises(Mismatch, match="step count"):
        run_case(StaleStep, lion_reference, one_case(), state=("m",))  # None: it keeps "step", so compared
    run_case(StaleStep, lion_reference, one_case(), state=("m",), compare_step=False)
    run_case(Lion, lion_reference, one_case(), state=("m",))  # None: Lion keeps no step; not compared
    with pytest.raises(Mismatch, match="'step' is missing"):
        run_case(Lion, lion_reference, one_case(), state=("m",), compare_step=True)


# ---- one Mismatch for every failure, with the failing case ---------------------------------------------------------
class Fragile(torch.optim.Adam):
    """Two distinct defects: raises on 0-d tensors, and a wrong β1 on the others."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if any(p.ndim == 0 for p in group["params"]):
                raise TypeError("cannot handle 0-d tensors")
            group["betas"] = (group["betas"][0] * 0.5, group["betas"][1])
        return super().step(closure)


def test_every_failure_is_one_mismatch_with_the_case(few_examples):
    with pytest.raises(Mismatch) as caught:
        verify(Fragile, adam_reference, hyperparameters=HYPER, state=ADAM_KEYS, max_steps=2, max_tensors=2)
    assert type(caught.value) is Mismatch  # not an ExceptionGroup, not the TypeError
    text = str(caught.value)
    assert "failing case: Case(shapes=" in text and "'lr':" in text and "params=" in text and "grads=" in text
    assert text.startswith("step ")


def test_an_exception_in_step_names_the_side_and_the_step():
    class Boom(torch.optim.Adam):
        def step(self, closure=None):
            if self.state and next(iter(self.state.values()))["step"] >= 1:
                raise RuntimeError("boom")
            return super().step(closure)

    with pytest.raises(Mismatch, match=r"step 2: the optimizer's step\(\) raised RuntimeError: boom"):
        run_case(Boom, adam_reference, one_case(), state=ADAM_KEYS)


# ---- constructor-level hyperparameters, components, groups and shapes ----------------------------------------------
LOOKAHEAD = st.fixed_dictionaries({"sync_rate": st.floats(0.05, 1.0), "sync_period": st.integers(1, 4)})


def lookahead_lamb(groups, sync_rate, sync_period):
    return optim.Lookahead(optim.LAMB(groups), sync_rate=sync_rate, sync_period=sync_period)


def test_constructor_hyperparameters_reach_both_sides(few_examples):
    verify(
        lookahead_lamb,
        wrapped(lookahead, lamb, ("sync_rate", "sync_period")),
        hyperparameters=st.fixed_dictionaries({"lr": st.floats(1e-3, 0.1)}),
        constructor=LOOKAHEAD,
        state=("phi", "base.m", "base.v"),
        components={"base": "base_optimizer"},
        max_steps=8,
    )


def test_a_missing_component_is_named():
    ref = wrapped(lookahead, lamb, ("sync_rate", "sync_period"))
    case = one_case()
    case.constructor = {"sync_rate": 0.5, "sync_period": 2}
    with pytest.raises(Mismatch, match="no attribute 'inner'"):
        run_case(lookahead_lamb, ref, case, state=("base.m",), components={"base": "inner"})


def test_group_and_shape_controls(few_examples):
    seen: list[tuple[int, set]] = []

    def build(groups):
        seen.append((len(groups), {tuple(p.shape) for g in groups for p in g["params"]}))
        return torch.optim.Adam(groups)

    verify(build, adam_reference, hyperparameters=HYPER, state=ADAM_KEYS, shapes=[(2, 3), (4,)], max_groups=1)
    assert {n for n, _ in seen} == {1}
    assert set().union(*(s for _, s in seen)) <= {(2, 3), (4,)}


# ---- variants ----------------------------------------------------------------------------------------------------
def test_adamw_is_adam_with_decoupled_decay(few_examples):
    decoupled = variants.decay(adam_reference, "decoupled")
    verify(torch.optim.AdamW, decoupled, hyperparameters=HYPER, state=ADAM_KEYS, max_steps=4)
    with pytest.raises(Mismatch, match="parameter"):  # and is not Adam: the variant is what makes it pass
        run_case(torch.optim.AdamW, adam_reference, one_case({"weight_decay": 0.1}), state=ADAM_KEYS)


def _adam_by_hand(theta, g, t, hp, *, bias=True, eps_in=False, clamp=False):
    """One Adam step from zero moments at step t = 1 .. (g constant), written out for each convention."""
    (b1, b2), eps, lr = hp["betas"], hp["eps"], hp["lr"]
    m = (1 - b1**t) * g
    v = (1 - b2**t) * g**2
    mh, vh = (m / (1 - b1**t), v / (1 - b2**t)) if bias else (m, v)
    den = np.sqrt(vh + eps) if eps_in else (np.maximum(np.sqrt(vh), eps) if clamp else np.sqrt(vh) + eps)
    return theta - lr * mh / den


@pytest.mark.parametrize(
    ("make", "kw"),
    [
        (variants.no_bias_correction, {"bias": False}),
        (lambda r: variants.eps_inside_root(r, "v", beta=1), {"eps_in": True}),
        (lambda r: variants.eps_clamp(r, "v", beta=1), {"clamp": True}),
    ],
)
def test_variants_equal_their_equations(make, kw):
    hp = {"lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-3, "weight_decay": 0.0}
    theta, g = np.array([1.0, -2.0, 0.5, 3.0]), np.array([0.3, 1e-3, 0.0, -2.0])
    rule = make(adam_reference)
    state, params = rule.init([theta], **hp), [theta]
    for t in range(1, 4):  # a constant gradient: the moments after t steps are (1 - β^t) g, (1 - β^t) g²
        new, state = rule.step(params, [g], state, **hp)
        np.testing.assert_allclose(new[0], _adam_by_hand(params[0], g, t, hp, **kw), rtol=1e-12)
        assert state.t == t
        params = new


def test_decay_modes_and_exclude_1d():
    hp = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.2}
    theta, g = [np.array([[1.0, -2.0]]), np.array([0.5, 3.0])], [np.array([[0.3, 0.1]]), np.array([0.0, -2.0])]
    plain = adam_reference.step(theta, g, adam_reference.init(theta), **{**hp, "weight_decay": 0.0})[0]
    for mode, expected in (
        ("decoupled", [p - 0.1 * 0.2 * t for p, t in zip(plain, theta)]),
        ("decoupled_fixed", [p - 0.2 * t for p, t in zip(plain, theta)]),
        ("proximal", [p / (1 + 0.1 * 0.2) for p in plain]),
    ):
        rule = variants.decay(adam_reference, mode)
        got = rule.step(theta, g, rule.init(theta), **hp)[0]
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-14)
    split = variants.exclude_1d(adam_reference, variants.fixed(adam_reference, weight_decay=0.0))
    got, state = split.step(theta, g, split.init(theta), **hp)
    np.testing.assert_allclose(got[0], adam_reference.step(theta[:1], g[:1], adam_init(theta[:1]), **hp)[0][0])
    np.testing.assert_allclose(got[1], plain[1])  # the vector: no decay
    assert len(state.m) == 2 and state.t == 1


def test_rectified_and_trust_variants_against_the_library():
    hp = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    theta, g = [np.array([1.0, -2.0, 0.5])], [np.array([0.3, -0.1, 0.2])]
    rect = variants.rectified(adabelief)
    new, _ = rect.step(theta, g, rect.init(theta), **hp)  # ρ_1 < 5: SGD with momentum, θ - α m̂ = θ - α g
    np.testing.assert_allclose(new[0], theta[0] - 0.01 * g[0], rtol=1e-14)
    eps_trust = variants.trust_eps(lamb)
    a = eps_trust.step(theta, g, lamb.init(theta), **hp)[0][0]
    b = lamb.step(theta, g, lamb.init(theta), **hp)[0][0]
    assert 0 < np.max(np.abs(a - b)) < 1e-9 and lamb.trust is not None  # ε moved the ratio; the helper is restored
    assert math.isclose(lamb.trust(2.0, 4.0), 0.5)


# ---- the CLI -----------------------------------------------------------------------------------------------------
@pytest.fixture
def at_root(monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])


def test_cli_state_mapping_and_missing_keys(capsys, at_root):
    ref = "tests.test_harness:adam_reference"
    mapped = ["--state", "m=exp_avg,v=exp_avg_sq", "--max-examples", "5", "--max-steps", "4"]
    code = main(["verify", "torch.optim:Adam", ref, *mapped])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "m=exp_avg" in out and out.strip().splitlines()[-1].startswith("pass")
    code = main(["verify", "torch.optim:Adam", ref, "--state", "m,v", "--max-examples", "5", "--max-steps", "2"])
    out = capsys.readouterr().out
    assert code == 1 and "['exp_avg', 'exp_avg_sq', 'step']" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--state", "m="], "--state"),
        (["--state", "=exp_avg"], "--state"),
        (["--hyper", "lr"], "--hyper"),
    ],
)
def test_cli_usage_errors(capsys, at_root, argv, word):
    code = main(["verify", "torch.optim:Adam", "tests.test_harness:adam_reference", *argv])
    err = capsys.readouterr().err
    assert code == 2 and word in err and "Traceback" not in err


def test_cli_a_target_that_is_no_optimizer_is_a_usage_error(capsys, at_root):
    code = main(["verify", "math:sqrt", "tests.test_harness:adam_reference"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be built" in err
    code = main(["verify", "builtins:list", "tests.test_harness:adam_reference"])
    err = capsys.readouterr().err
    assert code == 2 and "not an optimizer" in err
