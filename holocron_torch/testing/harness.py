"""The verify harness: run a torch optimizer and a NumPy reference rule side by side, step for step, and
compare the parameters and every named state buffer after every step.

A reference rule is any object with ``init(params, **hp) -> State`` and
``step(params, grads, state, **hp) -> (params, State)`` whose State fields are lists with one array per
parameter tensor (``t`` the step count). Each param group is an independent run of the reference.

How the optimizer's state is read, for each reference field:

- ``state=("m", "v")``: the same name on both sides, ``optimizer.state[p]["m"]`` against ``State.m[i]``;
- ``state={"m": "exp_avg", "v": "exp_avg_sq"}``: reference field -> optimizer state key (a peer's names);
- ``read_state=lambda opt, p: {"m": ..., "g_prev": -opt.state[p]["neg_pre_grad"]}``: any buffer stored
  transformed or nested, returned under the reference's field names (tensors or arrays);
- a dotted name ``"base.m"`` reads the wrapped optimizer: ``optimizer.base_optimizer.state[p]["m"]`` against
  ``State.base.m[i]``; ``components={"base": "optimizer"}`` names another attribute (``optimizer.optimizer``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

__all__ = ["Case", "Mismatch", "ReadState", "StateSpec", "TOLERANCE", "first_mismatch", "run_case"]

#: relative tolerance per dtype, applied to each buffer relative to its own largest magnitude (see run_case)
TOLERANCE: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 2e-4}

#: which buffers to compare: names shared by both sides, or {reference field: optimizer state key}; or a function
#: of a group's hyperparameters returning either
StateSpec = Sequence[str] | Mapping[str, str] | Callable[[dict[str, Any]], Sequence[str] | Mapping[str, str]]
#: ``(optimizer, param) -> {reference field: tensor or array}``, for buffers stored transformed or nested
ReadState = Callable[[torch.optim.Optimizer, torch.Tensor], Mapping[str, Any]]

_GROUP: Any = getattr(builtins, "BaseExceptionGroup", None)
if _GROUP is None:  # pragma: no cover - Python 3.10 (hypothesis depends on the backport there)
    _GROUP = __import__("exceptiongroup").BaseExceptionGroup


class Mismatch(AssertionError):  # noqa: N818 (reads as what it reports)
    """The torch optimizer and the reference disagree (or one of them raised): the message says which step, group,
    tensor and buffer, with the expected and the actual value, and the failing case (hyperparameters, shapes,
    values)."""


@dataclass
class Case:
    """One scenario: parameter values, a gradient per tensor per step, the param groups and the constructor's keywords.

    ``groups`` is a list of (tensor indices, hyperparameters); every tensor is in exactly one group. ``constructor``
    is passed as keywords to the optimizer's builder (``build(groups, **constructor)``) and, merged under each
    group's hyperparameters, to the reference (a wrapper's k and α, say).
    """

    params: list[np.ndarray]
    grads: list[list[np.ndarray]]
    groups: list[tuple[list[int], dict[str, Any]]]
    notes: dict[str, Any] = field(default_factory=dict)
    constructor: dict[str, Any] = field(default_factory=dict)

    def describe(self, steps: int | None = None) -> str:
        """The case as the failure message shows it: hyperparameters, shapes, values (gradients up to ``steps``)."""
        shapes = [tuple(p.shape) for p in self.params]
        grads = self.grads if steps is None else self.grads[:steps]
        ctor = f", constructor={self.constructor!r}" if self.constructor else ""
        return (
            f"Case(shapes={shapes}, steps={len(self.grads)}, groups={self.groups!r}{ctor},\n"
            f"     params={[p.tolist() for p in self.params]!r},\n"
            f"     grads={[[g.tolist() for g in s] for s in grads]!r})"
        )

    def __repr__(self) -> str:  # what a shrunk counterexample prints
        return self.describe()


def first_mismatch(error: BaseException) -> Mismatch | None:
    """The first Mismatch inside ``error`` (itself, or nested in an exception group), else None."""
    if isinstance(error, Mismatch):
        return error
    if _GROUP is not None and isinstance(error, _GROUP):
        for inner in error.exceptions:  # type: ignore[attr-defined]
            found = first_mismatch(inner)
            if found is not None:
                return found
    return None


def _component(opt: Any, seg: str, components: Mapping[str, str] | None) -> Any:
    attr = (components or {}).get(seg, f"{seg}_optimizer")
    if not hasattr(opt, attr) and hasattr(opt, seg):
        attr = seg
    if not hasattr(opt, attr):
        raise Mismatch(f"the optimizer {type(opt).__name__} has no attribute {attr!r} (for {seg!r}; see components=)")
    return getattr(opt, attr)


def _torch_state(
    opt: Any, p: torch.Tensor, key: str, components: Mapping[str, str] | None = None, *, required: bool = True
) -> Any:
    """``opt.state[p][key]`` (a dotted key walks into wrapped optimizers); Mismatch listing the keys if absent."""
    *path, last = key.split(".")
    for seg in path:
        opt = _component(opt, seg, components)
    st = opt.state.get(p, {}) if hasattr(opt.state, "get") else opt.state[p]
    if last not in st:
        if not required:
            return None
        raise Mismatch(
            f"state key {key!r} is missing from the optimizer's state; {type(opt).__name__}.state[p] has keys "
            f"{sorted(map(str, st))} (map the reference's field to one of them: state={{field: key}}, or read_state=)"
        )
    return st[last]


def _ref_state(state: Any, name: str, i: int) -> Any:
    for seg in name.split("."):
        state = getattr(state, seg, None)
        if state is None:
            return None
    return state[i]


def _state_map(spec: Any, hp: dict[str, Any]) -> dict[str, str]:
    names = spec(hp) if callable(spec) else spec
    if isinstance(names, str):
        names = (names,)
    return dict(names) if isinstance(names, Mapping) else {n: n for n in names}


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _compare(
    actual: Any, expected: Any, rtol: float, where: str, floor: float = 0.0, shadows: Sequence[Any] = ()
) -> float:
    """Raise Mismatch unless actual ≈ expected (see run_case); return max|expected| for the caller's history."""
    if expected is None:
        if actual is not None:
            raise Mismatch(f"{where}: the reference has no such buffer, the optimizer has one")
        return floor
    if actual is None:
        raise Mismatch(f"{where}: missing from the optimizer's state")
    a = _as_array(actual)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise Mismatch(f"{where}: shape {a.shape}, expected {e.shape}")
    scale = max(float(np.max(np.abs(e))) if e.size else 0.0, floor)
    err = np.abs(a - e)
    # what a relative input perturbation of size rtol can explain (linearised from the shadow runs)
    explained = (
        np.max([(rtol / PERTURBATION) * np.abs(np.asarray(sh, dtype=np.float64) - e) for sh in shadows], axis=0)
        if shadows
        else 0.0
    )
    explained = np.where(np.isfinite(explained), explained, np.inf)
    bad = ~(err <= rtol * (np.abs(e) + scale + 1e-300) + explained) | (np.isfinite(a) != np.isfinite(e))
    if np.any(bad):
        idx = tuple(np.argwhere(bad)[0]) if e.ndim else ()
        raise Mismatch(
            f"{where}: expected {e[idx]!r}, got {a[idx]!r} at index {idx} "
            f"(|diff| {err[idx]:.3g} > rtol {rtol:g} × (|expected| + max|expected| so far = {scale:.3g}) "
            f"+ input sensitivity {np.broadcast_to(explained, e.shape)[idx]:.3g})"
        )
    return scale


#: relative size of the shadow run's input perturbation (about 450 ulps in float64)
PERTURBATION = 1e-13


class _Shadow:
    """A reference run whose inputs, parameters and state are perturbed by a relative PERTURBATION after every step.
    Runs come in antithetic pairs: the same random draws, opposite signs. Where the trajectory forks on the sign of a
    rounding residual (an update that cancels to exactly 0 in one implementation and to 1e-17 in another, after which
    the next step goes one way or the other), one run of the pair takes each branch, whatever the draws."""

    def __init__(self, sign: float) -> None:
        self.rng, self.sign = np.random.default_rng(0), sign
        self.params: dict[int, Any] = {}
        self.states: dict[int, Any] = {}

    def perturb(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        size = self.rng.uniform(0.5, 1.0, x.shape) * self.rng.choice([-1.0, 1.0], x.shape)
        return x * (1 + self.sign * PERTURBATION * size)

    def perturb_state(self, state: Any) -> Any:
        """The same state with every float array perturbed (NamedTuples, lists, SimpleNamespaces are walked)."""
        if isinstance(state, (np.ndarray, np.floating, float)) and np.asarray(state).dtype.kind == "f":
            return self.perturb(state)  # (NumPy turns 0-d results into np.float64 scalars)
        if isinstance(state, tuple) and hasattr(state, "_fields"):
            return state._replace(**{f: self.perturb_state(getattr(state, f)) for f in state._fields})
        if isinstance(state, (list, tuple)):
            return type(state)(self.perturb_state(x) for x in state)
        if isinstance(state, SimpleNamespace):
            return SimpleNamespace(**{k: self.perturb_state(v) for k, v in vars(state).items()})
        return state


def _rounded(case: Case, dtype: torch.dtype) -> Case:
    def r(x: np.ndarray) -> np.ndarray:
        return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(dtype).double().numpy()

    return Case(
        [r(p) for p in case.params], [[r(g) for g in s] for s in case.grads], case.groups, case.notes, case.constructor
    )


def run_case(
    build: Callable[..., torch.optim.Optimizer],
    reference: Any,
    case: Case,
    *,
    state: StateSpec = (),
    read_state: ReadState | None = None,
    check_grads: bool = True,
    compare_step: bool | None = None,
    components: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    rtol: float | None = None,
) -> None:
    """Run ``case`` through ``build(param_groups, **case.constructor)`` and ``reference``; raise Mismatch at the first
    difference. Anything either side raises is reported as a Mismatch too (saying which side, at which step), and
    every Mismatch's message ends with the case (hyperparameters, shapes, values).

    Args:
        state: the buffers to compare: names, or {reference field: optimizer state key} (see the module docstring).
        read_state: ``(optimizer, param) -> {reference field: value}`` for buffers stored transformed or nested.
        check_grads: the optimizer must leave ``p.grad`` as it was (a changed or removed ``p.grad`` is a Mismatch);
            False for optimizers that fold weight decay into the gradient in place, or free it.
        compare_step: compare the reference's ``t`` with ``optimizer.state[p]["step"]``: True always, False never,
            None (default) wherever the optimizer keeps a per-parameter ``step``.
        components: {dotted-name segment: attribute} for wrappers (default ``<segment>_optimizer``).

    Every value (parameter, buffer) must satisfy |actual - expected| <= rtol (|expected| + S), S the largest
    |expected| of that buffer of that tensor over all steps so far: relative to the element, with a floor set
    by the magnitudes the value was computed from, so a coordinate that cancels to ~0 (0.3125 - 2 × 0.15625
    leaves 1e-17 in float64, 0 in float32) is judged against the magnitudes that cancelled, not at the ulp.
    Plus what the problem's own conditioning explains: two shadow reference runs whose inputs, parameters and state
    buffers are perturbed by a relative 1e-13 after every step (where rounding enters: each stored value; the two
    runs take the same random perturbations with opposite signs) measure each value's sensitivity, scaled up to a
    relative perturbation of rtol. So the optimizer must equal the reference evaluated at inputs within rtol
    (relative) of its own: where g + λθ cancels to 0, or a step divides by √v ≈ 0, rounding differences (an FMA,
    another summation order) are not called a mismatch, while any wrong sign, beta, bias correction or norm (an
    O(1) difference) still is (tools/mutate.py).
    """
    progress = {"t": 0, "side": "the optimizer's constructor"}
    try:
        _run(build, reference, case, state, read_state, check_grads, compare_step, components, dtype, device, rtol,
             progress)  # fmt: skip
    except Mismatch as e:
        raise Mismatch(f"{e}\nfailing case: {case.describe(progress['t'] or None)}") from None
    except Exception as e:
        where = f"step {progress['t']}: " if progress["t"] else ""
        raise Mismatch(
            f"{where}{progress['side']} raised {type(e).__name__}: {e}\nfailing case: "
            f"{case.describe(progress['t'] or None)}"
        ) from e


def _run(
    build: Callable[..., torch.optim.Optimizer],
    reference: Any,
    case: Case,
    state: StateSpec,
    read_state: ReadState | None,
    check_grads: bool,
    compare_step: bool | None,
    components: Mapping[str, str] | None,
    dtype: torch.dtype,
    device: str | torch.device,
    rtol: float | None,
    progress: dict[str, Any],
) -> None:
    rtol = TOLERANCE[dtype] if rtol is None else rtol
    # both sides start from the same numbers: the inputs rounded to the optimizer's dtype (what it can hold)
    case = _rounded(case, dtype)
    ctor = case.constructor
    tensors = [torch.tensor(p, dtype=dtype, device=device, requires_grad=True) for p in case.params]
    opt = build([{"params": [tensors[i] for i in idx], **hp} for idx, hp in case.groups], **ctor)
    if not isinstance(opt, torch.optim.Optimizer) and not callable(getattr(opt, "step", None)):
        raise Mismatch(f"the builder returned {type(opt).__name__}, not an optimizer (no step())")
    progress["side"] = "the reference's init"
    ref_hp = {g: {**ctor, **hp} for g, (_, hp) in enumerate(case.groups)}
    ref_params = {g: [case.params[i].copy() for i in idx] for g, (idx, _) in enumerate(case.groups)}
    ref_states = {g: reference.init(ref_params[g], **ref_hp[g]) for g in ref_hp}
    history: dict[tuple[int, str], float] = {}  # (tensor, buffer) -> largest |expected| so far
    shadows = [_Shadow(+1.0), _Shadow(-1.0)]
    for sh in shadows:
        sh.params = {g: [sh.perturb(p) for p in ps] for g, ps in ref_params.items()}
        sh.states = {g: reference.init(sh.params[g], **ref_hp[g]) for g in ref_hp}
    for t, grads in enumerate(case.grads, start=1):
        progress["t"] = t
        for i, p in enumerate(tensors):
            p.grad = torch.tensor(grads[i], dtype=dtype, device=device)
        before = [p.grad.clone() for p in tensors] if check_grads else []
        progress["side"] = "the optimizer's step()"
        opt.step()
        for i, p in enumerate(before and tensors):
            if p.grad is None:
                raise Mismatch(
                    f"step {t}: the optimizer set p.grad of tensor {i} to None (check_grads=False allows this)"
                )
            if not torch.equal(p.grad, before[i]):
                raise Mismatch(
                    f"step {t}: the optimizer changed p.grad of tensor {i} in place (first difference: expected "
                    f"{_as_array(before[i]).ravel()[:3].tolist()}, got {_as_array(p.grad).ravel()[:3].tolist()}; "
                    "check_grads=False allows this, e.g. for coupled weight decay added into the gradient)"
                )
        progress["side"] = "the reference's step"
        for g, (idx, _) in enumerate(case.groups):
            hp = ref_hp[g]
            ref_params[g], ref_states[g] = reference.step(ref_params[g], [grads[i] for i in idx], ref_states[g], **hp)
            for sh in shadows:
                sh_grads = [sh.perturb(grads[i]) for i in idx]
                sh.params[g], sh.states[g] = reference.step(sh.params[g], sh_grads, sh.states[g], **hp)
                # every stored value carries a rounding error too: perturb the shadow's state and parameters
                sh.params[g] = [sh.perturb(x) for x in sh.params[g]]
                sh.states[g] = sh.perturb_state(sh.states[g])
        progress["side"] = "reading the optimizer's state"
        for g, (idx, _) in enumerate(case.groups):
            keys = _state_map(state, ref_hp[g])
            for j, i in enumerate(idx):
                where = f"step {t}, group {g}, tensor {i} (shape {tuple(case.params[i].shape)})"
                try:
                    actual = {
                        "parameter": tensors[i],
                        **{f: _torch_state(opt, tensors[i], k, components) for f, k in keys.items()},
                    }
                except Mismatch as e:
                    raise Mismatch(f"{where}: {e}") from None
                if read_state is not None:
                    progress["side"] = "read_state"
                    actual.update(read_state(opt, tensors[i]))
                fields = [f for f in actual if f != "parameter"]
                expected = {"parameter": ref_params[g][j], **{f: _ref_state(ref_states[g], f, j) for f in fields}}
                shadow = [
                    {"parameter": sh.params[g][j], **{f: _ref_state(sh.states[g], f, j) for f in fields}}
                    for sh in shadows
                ]
                for name in actual:
                    key = keys.get(name, name)
                    label = (
                        f"{where}, parameter"
                        if name == "parameter"
                        else f"{where}, state {name!r}" + (f" (optimizer key {key!r})" if key != name else "")
                    )
                    floor = history.get((i, name), 0.0)
                    history[(i, name)] = _compare(
                        actual[name], expected[name], rtol, label, floor, [sh[name] for sh in shadow]
                    )
                if compare_step is False or not hasattr(ref_states[g], "t"):
                    continue
                count = _torch_state(opt, tensors[i], "step", components, required=bool(compare_step))
                if count is not None:
                    _compare(count, ref_states[g].t, 0.0, f"{where}, step count")
