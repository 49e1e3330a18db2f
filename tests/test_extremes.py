"""The numerical contract at extreme magnitudes (docs/reliability.md, "Extreme magnitudes"): for finite inputs,

(a) every path's result equals the float64 reference within the dtype's tolerance wherever the reference's result
    (the parameter and every state buffer) is representable in that dtype: 0 or in its normal range;
(b) a result the reference keeps finite (and within the dtype's range) is never inf/NaN, even where (a) does not
    bind because a value fell into the dtype's subnormal range (where it holds only a few bits);
(c) the paths agree with each other (each within tolerance of the reference where (a) applies). Where the dtype
    cannot hold the reference's result (a state such as v = g² beyond its largest value), nothing is promised.

Elements and gradients are drawn log-uniformly over each dtype's whole range, from its smallest subnormal to near
its largest value; lr and weight decay log-uniformly over wide ranges; every rule and both wrappers, every path
(default, foreach=True, foreach=False, fused=True, the device-scalar path), maximize on and off.

The tolerance: |actual - expected| <= rtol (|expected| + max|expected of that buffer|) + what the problem's own
conditioning explains, measured as in holocron_torch.testing.harness by two antithetic reference runs whose
inputs, parameters and state are perturbed after every step, here by rtol relative plus one smallest subnormal of
the dtype absolute (the rounding the dtype does to every value it stores, subnormals included), plus 4 subnormals
absolute (a value in the subnormal range is rounded to that grid by each of the few ops that compute it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import holocron_torch.optim as optim
from holocron_torch.testing import negated, strategies, wrapped
from tests.registry import BASE, RULES, WRAPPED, torch_class
from tests.test_step_for_step import device_scalars

#: float16 is not held to the contract yet (docs/reliability.md, "Extreme magnitudes": its range is too narrow for
#: the intermediates of the adaptive rules, e.g. ε below its smallest subnormal, u_t = r_t + λθ beyond 65504); its
#: behaviour where an update is below its resolution is tested below
DTYPES = (torch.float64, torch.float32, torch.bfloat16)
#: relative tolerance per dtype: float64/float32 as the step-for-step suite (holocron_torch.testing.TOLERANCE);
#: bfloat16 (unit roundoff 2^-9 = 2e-3) and float16 (2^-12 = 2.4e-4) round every op's result to their 8/11 bits,
#: and a step does about ten such roundings: 10 unit roundoffs
RTOL = {torch.float64: 1e-10, torch.float32: 2e-4, torch.bfloat16: 2e-2, torch.float16: 2.5e-3}
PATHS: dict[str, dict[str, Any]] = {
    "default": {},
    "foreach": dict(foreach=True),
    "per-tensor": dict(foreach=False),
    "fused": dict(fused=True),
    "device-scalars": dict(foreach=True, device_scalars=True),
}
SHAPES = ((), (1,), (3,), (2, 3), (3, 1, 2))
#: every rule, and each wrapper around the two bases of the step-for-step suite
TARGETS = BASE + [f"{w}:{b}" for w, b in WRAPPED]


def subnormal(dtype: torch.dtype) -> float:
    fi = torch.finfo(dtype)
    return fi.tiny * fi.eps


@st.composite
def magnitudes(draw: st.DrawFn, dtype: torch.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """An array of ``shape`` whose magnitudes are log-uniform around a centre drawn log-uniformly over the dtype's
    whole range (smallest subnormal to max / 8), spread over 0 to 6 decades, random signs, some zeros; rounded to
    the dtype (both sides start from what the dtype holds)."""
    lo, hi = math.log10(subnormal(dtype)), math.log10(torch.finfo(dtype).max / 8)
    centre = draw(st.floats(lo, hi))
    spread = draw(st.sampled_from([0.0, 1.0, 6.0]))
    n = math.prod(shape)
    exps = [draw(st.floats(max(lo, centre - spread), min(hi, centre + spread))) for _ in range(n)]
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n))
    zeros = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if draw(st.booleans()) else [False] * n
    x = np.array([0.0 if z else s * 10.0**e for e, s, z in zip(exps, signs, zeros)], dtype=np.float64)
    return torch.as_tensor(x.reshape(shape)).to(dtype).double().numpy()


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0**e)


def target(name: str) -> tuple[Any, Any, Any, Any]:
    """(build(groups, path kwargs), reference, hyperparameter strategy, state names of hp)."""
    if ":" not in name:
        rule = RULES[name]

        def build(groups: list[dict[str, Any]], kw: dict[str, Any]) -> torch.optim.Optimizer:
            kw = dict(kw)
            cls = device_scalars(torch_class(rule)) if kw.pop("device_scalars", False) else torch_class(rule)
            return cls(groups, **kw)

        return build, rule.module, strategies.hyperparameters(rule), rule.state_fields
    w, b = name.split(":")
    w_rule, b_rule = RULES[w], RULES[b]

    def build_wrapped(groups: list[dict[str, Any]], kw: dict[str, Any]) -> torch.optim.Optimizer:
        kw = dict(kw)
        b_cls = device_scalars(torch_class(b_rule)) if kw.pop("device_scalars", False) else torch_class(b_rule)
        own = {h.name: groups[0].pop(h.name) for h in w_rule.hypers}
        for g in groups[1:]:
            for h in w_rule.hypers:
                g.pop(h.name)
        return getattr(optim, w_rule.cls)(b_cls(groups, **kw), **own)

    ref = wrapped(w_rule.module, b_rule.module, [h.name for h in w_rule.hypers])
    # the shortest sync period, so that the slow weights sync within the steps drawn
    hp = strategies.hyperparameters(b_rule).flatmap(
        lambda bh: strategies.hyperparameters(w_rule, sync_period=w_rule.hypers[1].lo).map(lambda wh: {**bh, **wh})
    )
    return build_wrapped, ref, hp, lambda h: ("phi", *(f"base.{f}" for f in b_rule.state_fields(h)))


@st.composite
def extreme_cases(draw: st.DrawFn, name: str) -> dict[str, Any]:
    hps = target(name)[2]
    dtype = draw(st.sampled_from(DTYPES))
    hp = draw(hps)
    hp["lr"] = draw(log_uniform(1e-8, 10.0))
    hp["weight_decay"] = draw(st.one_of(st.just(0.0), log_uniform(1e-8, 1e4)))
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=2))
    steps = draw(st.integers(1, 3))
    params = [draw(magnitudes(dtype, s)) for s in shapes]
    grads = [[draw(magnitudes(dtype, s)) for s in shapes] for _ in range(steps)]
    return dict(dtype=dtype, hp=hp, params=params, grads=grads, maximize=draw(st.booleans()))


def _read(opt: torch.optim.Optimizer, p: torch.Tensor, name: str) -> np.ndarray:
    *path, key = name.split(".")
    for seg in path:
        opt = getattr(opt, f"{seg}_optimizer")
    return opt.state[p][key].detach().double().numpy().copy()


def _ref_read(state: Any, name: str, i: int) -> np.ndarray:
    for seg in name.split("."):
        state = getattr(state, seg)
    return np.asarray(state[i], dtype=np.float64)


class _Shadow:
    """A reference run perturbed after every step by rtol relative and one subnormal of the dtype absolute."""

    def __init__(self, sign: float, rtol: float, tiny: float) -> None:
        self.rng, self.sign, self.rtol, self.tiny = np.random.default_rng(0), sign, rtol, tiny

    def __call__(self, x: Any) -> Any:
        if isinstance(x, (np.ndarray, np.floating, float)) and np.asarray(x).dtype.kind == "f":
            x = np.asarray(x, dtype=np.float64)
            u = self.rng.uniform(0.5, 1.0, x.shape) * self.rng.choice([-1.0, 1.0], x.shape)
            with np.errstate(all="ignore"):
                return x * (1 + self.sign * self.rtol * u) + self.sign * self.tiny * u
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return x._replace(**{f: self(getattr(x, f)) for f in x._fields})
        if isinstance(x, (list, tuple)):
            return type(x)(self(v) for v in x)
        if hasattr(x, "__dict__") and type(x).__name__ == "SimpleNamespace":
            return type(x)(**{k: self(v) for k, v in vars(x).items()})
        return x


def run_reference(ref: Any, case: dict[str, Any], perturb: Any = None) -> list[list[dict[str, np.ndarray]]]:
    """Per step, per tensor: {"parameter": ..., buffer: ...} of the float64 reference."""
    hp, fields = case["hp"], case["fields"]
    ref = negated(ref) if case["maximize"] else ref
    params = [p.copy() for p in case["params"]]
    if perturb:
        params = perturb(params)
    out = []
    with np.errstate(all="ignore"):
        state = ref.init(params, **hp)
        for grads in case["grads"]:
            params, state = ref.step(params, perturb(grads) if perturb else grads, state, **hp)
            if perturb:
                params, state = perturb(params), perturb(state)
            out.append(
                [
                    {"parameter": np.asarray(params[i], np.float64), **{n: _ref_read(state, n, i) for n in fields}}
                    for i in range(len(params))
                ]
            )
    return out


def run_path(build: Any, case: dict[str, Any], kw: dict[str, Any]) -> list[list[dict[str, np.ndarray]]]:
    dtype = case["dtype"]
    tensors = [torch.tensor(p, dtype=dtype, requires_grad=True) for p in case["params"]]
    opt = build([{"params": tensors, **case["hp"]}], {**kw, "maximize": case["maximize"]})
    out = []
    for grads in case["grads"]:
        for p, g in zip(tensors, grads):
            p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
        out.append(
            [
                {"parameter": p.detach().double().numpy().copy(), **{n: _read(opt, p, n) for n in case["fields"]}}
                for p in tensors
            ]
        )
    return out


def representable(values: dict[str, np.ndarray], dtype: torch.dtype, digits: bool = True) -> bool:
    """Whether the dtype holds every value: finite, not beyond its largest value, and (``digits``) 0 or in its
    normal range, where it keeps its full relative precision (a subnormal state such as m = 1e-43 in float32 holds
    a few bits, and every later value computed from it inherits that rounding)."""
    fi = torch.finfo(dtype)
    ok = [
        np.isfinite(v) & (np.abs(v) <= fi.max) & (~digits | (v == 0) | (np.abs(v) >= fi.tiny)) for v in values.values()
    ]
    return all(bool(np.all(x)) for x in ok)


def check_contract(name: str, case: dict[str, Any], paths: dict[str, dict[str, Any]] = PATHS) -> None:
    build, ref, _, fields = target(name)
    dtype, hp = case["dtype"], case["hp"]
    case = {**case, "fields": fields(hp)}
    rtol, tiny = RTOL[dtype], subnormal(dtype)
    expected = run_reference(ref, case)
    shadows = [run_reference(ref, case, _Shadow(s, rtol, tiny)) for s in (1.0, -1.0)]
    results = {}
    for path, kw in paths.items():
        results[path] = run_path(build, case, kw)
    alive = [True] * len(case["params"])  # (a) binds while every value of the tensor so far was representable
    finite = [True] * len(case["params"])  # (b) binds while the reference's values are finite in the dtype
    # the largest |expected| of each value so far (the parameter's from its initial value on): the magnitudes a
    # value that cancels to ~0 was computed from (as holocron_torch.testing.harness.run_case)
    history = {(i, "parameter"): float(np.max(np.abs(p), initial=0.0)) for i, p in enumerate(case["params"])}
    history.update({(i, "phi"): v for (i, _), v in list(history.items())})  # (a wrapper's slow weights start as θ_0)
    for t, step in enumerate(expected):
        for i, exp in enumerate(step):
            alive[i] = alive[i] and representable(exp, dtype)
            finite[i] = finite[i] and representable(exp, dtype, digits=False)
            for path, res in results.items():  # (b)
                if finite[i] and not all(bool(np.all(np.isfinite(a))) for a in res[t][i].values()):
                    raise AssertionError(
                        f"(b) {name} {dtype} path {path!r}, step {t + 1}, tensor {i}: a non-finite value where the "
                        f"reference's are finite in the dtype; hp={hp}"
                    )
            if not alive[i]:  # (the dtype cannot hold the result: nothing is promised, docs/reliability.md)
                continue
            for key, e in exp.items():
                explained = np.max([np.abs(sh[t][i][key] - e) for sh in shadows], axis=0)
                explained = np.where(np.isfinite(explained), explained, np.inf)
                scale = history[(i, key)] = max(history.get((i, key), 0.0), float(np.max(np.abs(e), initial=0.0)))
                bound = rtol * (np.abs(e) + scale) + explained + 4 * tiny
                for path, res in results.items():
                    a = res[t][i][key]
                    bad = ~(np.abs(a - e) <= bound) | ~np.isfinite(a)
                    if np.any(bad):
                        j = tuple(np.argwhere(bad)[0]) if e.ndim else ()
                        raise AssertionError(
                            f"(a) {name} {dtype} path {path!r}, step {t + 1}, tensor {i}, {key}: expected {e[j]!r}, "
                            f"got {a[j]!r} at {j} (bound {np.broadcast_to(bound, e.shape)[j]:.3g}); hp={hp}"
                        )


@pytest.mark.parametrize("name", TARGETS)
def test_every_path_equals_the_reference_at_extreme_magnitudes(name):
    @given(case=extreme_cases(name))
    def check(case: dict[str, Any]) -> None:
        check_contract(name, case)

    check()


def _case(dtype: torch.dtype, hp: dict[str, Any], params: list[Any], grads: list[list[Any]]) -> dict[str, Any]:
    """A case of the property test written out (its arrays rounded to the dtype, as the strategy's)."""

    def rnd(x: Any) -> np.ndarray:
        return torch.tensor(x, dtype=torch.float64).to(dtype).double().numpy()

    return dict(
        dtype=dtype,
        hp=hp,
        params=[rnd(p) for p in params],
        grads=[[rnd(g) for g in gs] for gs in grads],
        maximize=False,
    )


#: cases the property test's ``thorough`` profile found (or that make its findings deterministic), each failing
#: before its fix (docs/reliability.md, "Extreme magnitudes")
KNOWN = {
    # u_t = a_t + λ θ_{t-1} overflowed float32 (λ θ beyond 3.4e38): ‖u_t‖ = inf, the whole tensor NaN; the
    # reference's θ_t is finite (α τ_t ‖u_t‖ = α φ <= 10 α)
    "lamb-u-overflow": (
        "lamb",
        _case(torch.float32, {"lr": 1e-2, "weight_decay": 2.0}, [[3e38, -1e38, 1.0]], [[[1.0, 2.0, -1.0]]]),
    ),
    "ralars-u-overflow": (
        "ralars",
        _case(torch.float32, {"lr": 1e-2, "weight_decay": 2.0}, [[3e38, -1e38, 1.0]], [[[1.0, 2.0, -1.0]]]),
    ),
    # the device-scalar path applied a 0-d trust ratio as an operand of the dtype: γ = ‖θ‖ / ‖g‖ = 1e42 for a
    # subnormal float32 gradient became inf, v_t inf and θ_t -inf, where the reference moves by α γ g ~ 0.1
    "lars-subnormal-gradient-device": (
        "lars",
        _case(torch.float32, {"lr": 0.1}, [[1.0, 2.0, -2.0]], [[[1e-42, -2e-42, 1.4e-45]]] * 2),
    ),
    # the same on the device-scalar path, which formed u_t in float32 (found there by the property test)
    "ralars-u-overflow-device": (
        "ralars",
        _case(
            torch.float32,
            {"lr": 1.1e-6, "betas": (0.0, 0.61), "eps": 2.2e-7, "weight_decay": 142.8, "scale_clip": (0.5, 2.0)},
            [[-4.25e36, -4.25e36, 4.25e36], [-1.0, -1.0, -1.0]],
            [[[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]] * 2,
        ),
    ),
    # AdaBelief float32, g = -1e36 (s_t = ε): the fused kernel and the device-scalar path formed m̂ / (√ŝ + ε) = 9e38
    # (inf in float32) before multiplying by α = 0.1, where the update, 9e37, is representable (found by `thorough`)
    "adabelief-quotient-overflow": (
        "adabelief",
        _case(torch.float32, {"lr": 0.1, "betas": (0.0, 0.5), "eps": 6e-7}, [[-1.0]], [[[-1e36]]]),
    ),
    # AdamP's g · θ (and ‖θ_i‖², (‖θ_i‖ + ε)²) overflowed float32/bfloat16 for weights near 1e30: the cosine NaN,
    # no projection, the decay not scaled by wd_ratio (θ_t 10% off)
    **{
        f"adamp-projection-{str(dt)[6:]}": (
            "adamp",
            _case(
                dt,
                {"lr": 0.1, "weight_decay": 1.0},
                [[[1e30, 1e30, 3e29], [2e30, -1e30, 0.0]]],
                [[[[1e10, -1e10, 0.5], [1e10, 2e10, -1.0]]]],
            ),
        )
        for dt in (torch.float32, torch.bfloat16)
    },
}


@pytest.mark.parametrize("case", list(KNOWN), ids=list(KNOWN))
def test_known_extreme_cases(case):
    name, c = KNOWN[case]
    check_contract(name, c)


@pytest.mark.parametrize("fused", [False, True], ids=["default", "fused"])
@pytest.mark.parametrize("name", BASE)
def test_a_run_continues_bitwise_under_another_number_of_threads(name, fused):
    """Resuming on a machine with another number of threads gives the same bits, as torch.optim.AdamW (elementwise)
    does: every per-tensor sum and norm of a large tensor is split the same way whatever torch.get_num_threads()
    (TAdam's w_t sum was split by thread count before: holocron_torch.optim._base.fixed_sum)."""
    rule = RULES[name]

    def run(threads: int) -> list[torch.Tensor]:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            gen = torch.Generator().manual_seed(0)
            params = [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in [(70_001,), (300, 200)]]
            opt = torch_class(rule)(params, lr=1e-2, weight_decay=0.01, fused=fused)
            for _ in range(2):
                for p in params:
                    p.grad = torch.randn(p.shape, generator=gen)
                opt.step()
            return [p.detach().clone() for p in params] + [b for p in params for b in opt.state[p].values()]
        finally:
            torch.set_num_threads(before)

    one, two = run(1), run(2)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", BASE)
def test_an_update_below_the_dtypes_resolution_leaves_the_parameter_and_advances_the_state(name, dtype):
    """What docs/reliability.md says of an update smaller than half an ulp of the parameter in float16/bfloat16: the
    parameter rounds back to itself (round to nearest, as torch.optim.AdamW in that dtype), while the state buffers
    advance; the float64 reference moves by less than half an ulp. Every path."""
    rule = RULES[name]
    theta = np.array([1.0, -1.0, 0.5, 2.0])  # powers of two: half an ulp is |θ| ε / 2
    grads = np.array([0.1, -0.2, 0.3, 0.05])
    hp = {"lr": 1e-6}
    new, _ = rule.module.step([theta], [grads], rule.module.init([theta], **hp), **hp)
    half_ulp = np.abs(theta) * torch.finfo(dtype).eps / 2  # (the θ drawn are powers of two)
    assert np.all(new[0] != theta) and np.all(np.abs(new[0] - theta) < half_ulp)
    for path, kw in PATHS.items():
        kw = {k: v for k, v in kw.items() if k != "device_scalars"}
        p = torch.nn.Parameter(torch.tensor(theta, dtype=dtype))
        opt = torch_class(rule)([p], **hp, **kw)
        p.grad = torch.tensor(grads, dtype=dtype)
        opt.step()
        assert torch.equal(p.detach(), torch.tensor(theta, dtype=dtype)), path
        moved = [k for k, b in opt.state[p].items() if k != "step" and b.dim() and bool(b.ne(0).any())]
        assert moved, f"{path}: no state buffer advanced"
    control = torch.nn.Parameter(torch.tensor(theta, dtype=dtype))
    adamw = torch.optim.AdamW([control], lr=1e-6)
    control.grad = torch.tensor(grads, dtype=dtype)
    adamw.step()
    assert torch.equal(control.detach(), torch.tensor(theta, dtype=dtype))
