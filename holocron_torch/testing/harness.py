"""The verify harness: run a torch optimizer and a NumPy reference rule side by side, step for step, and
compare the parameters and every named state buffer after every step.

A reference rule is any object with ``init(params, **hp) -> State`` and
``step(params, grads, state, **hp) -> (params, State)`` whose State fields are lists with one array per
parameter tensor (``t`` the step count). A state name such as ``"m"`` is read as ``optimizer.state[p]["m"]``
and ``state.m[i]``; a dotted name ``"base.m"`` reads ``optimizer.base_optimizer.state[p]["m"]`` and
``state.base.m[i]`` (for wrappers). Each param group is an independent run of the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

__all__ = ["Case", "Mismatch", "run_case", "TOLERANCE"]

#: relative tolerance per dtype, applied to each buffer relative to its own largest magnitude (see run_case)
TOLERANCE: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 2e-4}


class Mismatch(AssertionError):  # noqa: N818 (reads as what it reports)
    """The torch optimizer and the reference disagree: says which step, group, tensor and buffer."""


@dataclass
class Case:
    """One scenario: parameter values, a gradient per tensor per step, and the param groups.

    ``groups`` is a list of (tensor indices, hyperparameters); every tensor is in exactly one group.
    """

    params: list[np.ndarray]
    grads: list[list[np.ndarray]]
    groups: list[tuple[list[int], dict[str, Any]]]
    notes: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # what a shrunk counterexample prints
        shapes = [tuple(p.shape) for p in self.params]
        return (
            f"Case(shapes={shapes}, steps={len(self.grads)}, groups={self.groups!r},\n"
            f"     params={[p.tolist() for p in self.params]!r},\n"
            f"     grads={[[g.tolist() for g in s] for s in self.grads]!r})"
        )


def _torch_state(opt: torch.optim.Optimizer, p: torch.Tensor, name: str) -> Any:
    *path, key = name.split(".")
    for seg in path:
        opt = getattr(opt, f"{seg}_optimizer")
    return opt.state[p].get(key)


def _ref_state(state: Any, name: str, i: int) -> Any:
    for seg in name.split("."):
        state = getattr(state, seg)
    return state[i]


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
    a = actual.detach().to("cpu", torch.float64).numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
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

    return Case([r(p) for p in case.params], [[r(g) for g in s] for s in case.grads], case.groups, case.notes)


def run_case(
    build: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
    reference: Any,
    case: Case,
    *,
    state: Callable[[dict[str, Any]], Sequence[str]] | Sequence[str] = (),
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    rtol: float | None = None,
    compare_step: bool = True,
) -> None:
    """Run ``case`` through ``build(param_groups)`` and ``reference``; raise Mismatch at the first difference.

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
    rtol = TOLERANCE[dtype] if rtol is None else rtol
    # both sides start from the same numbers: the inputs rounded to the optimizer's dtype (what it can hold)
    case = _rounded(case, dtype)
    tensors = [torch.tensor(p, dtype=dtype, device=device, requires_grad=True) for p in case.params]
    opt = build([{"params": [tensors[i] for i in idx], **hp} for idx, hp in case.groups])
    ref_params = {g: [case.params[i].copy() for i in idx] for g, (idx, _) in enumerate(case.groups)}
    ref_states = {g: reference.init(ref_params[g], **hp) for g, (_, hp) in enumerate(case.groups)}
    history: dict[tuple[int, str], float] = {}  # (tensor, buffer) -> largest |expected| so far
    shadows = [_Shadow(+1.0), _Shadow(-1.0)]
    for sh in shadows:
        sh.params = {g: [sh.perturb(p) for p in ps] for g, ps in ref_params.items()}
        sh.states = {g: reference.init(sh.params[g], **hp) for g, (_, hp) in enumerate(case.groups)}
    for t, grads in enumerate(case.grads, start=1):
        for i, p in enumerate(tensors):
            p.grad = torch.tensor(grads[i], dtype=dtype, device=device)
        before = [p.grad.clone() for p in tensors]
        opt.step()
        for i, p in enumerate(tensors):
            if not torch.equal(p.grad, before[i]):
                raise Mismatch(f"step {t}: the optimizer changed p.grad of tensor {i}")
        for g, (idx, hp) in enumerate(case.groups):
            ref_params[g], ref_states[g] = reference.step(ref_params[g], [grads[i] for i in idx], ref_states[g], **hp)
            for sh in shadows:
                sh_grads = [sh.perturb(grads[i]) for i in idx]
                sh.params[g], sh.states[g] = reference.step(sh.params[g], sh_grads, sh.states[g], **hp)
                # every stored value carries a rounding error too: perturb the shadow's state and parameters
                sh.params[g] = [sh.perturb(x) for x in sh.params[g]]
                sh.states[g] = sh.perturb_state(sh.states[g])
            names = state(hp) if callable(state) else state
            for j, i in enumerate(idx):
                where = f"step {t}, group {g}, tensor {i} (shape {tuple(case.params[i].shape)})"
                actual = {"parameter": tensors[i], **{n: _torch_state(opt, tensors[i], n) for n in names}}
                expected = {"parameter": ref_params[g][j], **{n: _ref_state(ref_states[g], n, j) for n in names}}
                shadow = [
                    {"parameter": sh.params[g][j], **{n: _ref_state(sh.states[g], n, j) for n in names}}
                    for sh in shadows
                ]
                for name in actual:
                    label = f"{where}, {name}" if name == "parameter" else f"{where}, state {name!r}"
                    floor = history.get((i, name), 0.0)
                    history[(i, name)] = _compare(
                        actual[name], expected[name], rtol, label, floor, [sh[name] for sh in shadow]
                    )
                if compare_step and hasattr(ref_states[g], "t"):
                    _compare(_torch_state(opt, tensors[i], "step"), ref_states[g].t, 0.0, f"{where}, step count")
