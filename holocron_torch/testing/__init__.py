"""holocron_torch.testing: verify a torch optimizer against a NumPy reference rule, step for step, with
Hypothesis. holocron-torch's own conformance suite runs on this same engine, and so does ``make audit``, which
verifies the peers' implementations of our rules (docs/conformance.md).

>>> from hypothesis import strategies as st
>>> from holocron_torch.testing import verify, variants
>>> from reference import adamp  # or your own NumPy init/step
>>> verify(timm.optim.AdamP, adamp, hyperparameters=st.fixed_dictionaries({"lr": st.floats(1e-4, 0.1)}),
...        state={"m": "exp_avg", "v": "exp_avg_sq"})  # {reference field: the optimizer's state key}

Every failure (a difference, a missing buffer, an exception on either side, a changed ``p.grad``) reaches the
caller as one ``Mismatch`` whose message names the step, group, tensor and buffer, the expected and the actual value,
and the failing case (hyperparameters, shapes, values), shrunk by Hypothesis. ``variants`` composes the common
conventions (weight decay, bias correction, ε placement, the trust-ratio clamp, excluded 1-d tensors) onto a
reference rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from . import strategies, variants
from .harness import TOLERANCE, Case, Mismatch, ReadState, StateSpec, first_mismatch, run_case

__all__ = [
    "Case",
    "Mismatch",
    "TOLERANCE",
    "cases",
    "negated",
    "run_case",
    "strategies",
    "variants",
    "verify",
    "wrapped",
]


@st.composite
def cases(
    draw: Any,
    hyperparameters: st.SearchStrategy[dict[str, Any]],
    *,
    max_steps: int = 20,
    max_tensors: int = 3,
    max_groups: int = 2,
    elements: st.SearchStrategy[float] | None = None,
    shapes: st.SearchStrategy[tuple[int, ...]] | Sequence[tuple[int, ...]] | None = None,
    constructor: st.SearchStrategy[dict[str, Any]] | None = None,
) -> Case:
    """Scenarios: 1..max_tensors tensors of drawn shapes and values, 1..max_steps steps, 1..max_groups groups.

    Step 1's gradients are drawn element by element (zeros, tiny and large values included); later steps
    perturb them with a seeded normal walk at a drawn scale, so that long runs stay cheap to generate.
    ``shapes`` (a strategy, or a list to sample from) replaces strategies.SHAPES; ``constructor`` draws the
    keywords given once to the optimizer's builder (and to the reference).
    """
    elements = strategies.ELEMENTS if elements is None else elements
    if shapes is None:
        shapes = strategies.shapes()
    elif not isinstance(shapes, st.SearchStrategy):
        shapes = st.sampled_from([tuple(s) for s in shapes])
    n = draw(st.integers(1, max_tensors))
    drawn = [draw(shapes) for _ in range(n)]
    params = [draw(strategies.arrays(s, elements)) for s in drawn]
    first = [draw(strategies.arrays(s, elements)) for s in drawn]
    steps = draw(st.integers(1, max_steps))
    scale = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grads = [first]
    for _ in range(steps - 1):
        grads.append([g + scale * rng.standard_normal(g.shape) for g in grads[-1]])
    k = draw(st.integers(1, max(1, min(max_groups, n))))
    owner = [i % k for i in range(n)]  # deterministic split; which tensors share a group is not the point
    groups = [([i for i in range(n) if owner[i] == g], draw(hyperparameters)) for g in range(k)]
    ctor = draw(constructor) if constructor is not None else {}
    return Case(params=params, grads=grads, groups=groups, constructor=dict(ctor))


def verify(
    optimizer: Callable[..., torch.optim.Optimizer],
    reference: Any,
    *,
    hyperparameters: st.SearchStrategy[dict[str, Any]] | None = None,
    state: StateSpec = (),
    read_state: ReadState | None = None,
    check_grads: bool = True,
    compare_step: bool | None = None,
    constructor: st.SearchStrategy[dict[str, Any]] | None = None,
    components: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    rtol: float | None = None,
    max_steps: int = 20,
    max_tensors: int = 3,
    max_groups: int = 2,
    shapes: st.SearchStrategy[tuple[int, ...]] | Sequence[tuple[int, ...]] | None = None,
    elements: st.SearchStrategy[float] | None = None,
) -> None:
    """Property test: for every drawn scenario, ``optimizer`` equals ``reference`` after every step.

    Args:
        optimizer: a torch optimizer class, or any callable ``(param_groups, **constructor) -> optimizer``.
        reference: a module or object with ``init``/``step`` (see holocron_torch.testing.harness); a variant of
            one of ours: ``variants.decay(reference.adabelief, "decoupled")`` and the like.
        hyperparameters: a strategy of hyperparameter dicts, one drawn per param group (default: none, ``{}``).
        state: the buffers to compare: names shared by both sides (``("m", "v")``), or a mapping {reference
            field: optimizer state key} (``{"m": "exp_avg", "v": "exp_avg_sq"}``), or a function of a group's
            hyperparameters returning either. A key absent from the optimizer's state is a Mismatch that lists
            the keys it has.
        read_state: ``(optimizer, param) -> {reference field: value}``, for buffers stored transformed
            (``-g_prev``, a bias-corrected EMA) or nested; compared like ``state``'s.
        check_grads: the optimizer must leave ``p.grad`` unchanged (a changed or ``None`` p.grad is a Mismatch);
            False skips the check (coupled weight decay added into p.grad in place, or a freed p.grad).
        compare_step: compare the reference State's ``t`` with ``optimizer.state[p]["step"]``: None (default)
            where the optimizer keeps one per parameter, True always (absent: Mismatch), False never.
        constructor: a strategy of keyword dicts given once to the builder, ``optimizer(groups, **kw)``, and
            merged under each group's hyperparameters for the reference (a wrapper's k and α).
        components: for a wrapper's dotted names (``"base.m"``), the attribute holding the wrapped optimizer
            (default ``base_optimizer``): ``{"base": "optimizer"}``.
        dtype, device: where the torch optimizer runs; the reference is always float64 NumPy.
        rtol: tolerance (default TOLERANCE[dtype]); see run_case for how it is applied.
        max_steps, max_tensors, max_groups: the longest run, the most tensors, the most param groups drawn
            (``max_groups=1`` for an optimizer that takes a single group).
        shapes: the tensor shapes drawn (a strategy, or a list to sample from; default strategies.SHAPES).
        elements: a strategy for element values (default: strategies.ELEMENTS).

    Raises:
        Mismatch: one, whatever went wrong, with the shrunk counterexample in its message (and as the note
            Hypothesis attaches: ``Falsifying example``).
    """
    hyperparameters = st.just({}) if hyperparameters is None else hyperparameters
    drawn = cases(
        hyperparameters,
        max_steps=max_steps,
        max_tensors=max_tensors,
        max_groups=max_groups,
        elements=elements,
        shapes=shapes,
        constructor=constructor,
    )

    # one failure, the shrunk one, rather than an ExceptionGroup of every distinct one Hypothesis met
    @settings(report_multiple_bugs=False)
    @given(case=drawn)
    def check(case: Case) -> None:
        run_case(
            optimizer,
            reference,
            case,
            state=state,
            read_state=read_state,
            check_grads=check_grads,
            compare_step=compare_step,
            components=components,
            dtype=dtype,
            device=device,
            rtol=rtol,
        )

    try:
        check()
    except Mismatch:
        raise
    except Exception as e:  # Hypothesis' Flaky (an exception group), or a group despite the setting
        found = first_mismatch(e)
        if found is None:
            raise
        error = Mismatch(f"{type(e).__name__}: {found}")
        error.__notes__ = list(getattr(found, "__notes__", []))
        raise error from e


class wrapped:  # noqa: N801 (used like a module: wrapped(...).init / .step)
    """A reference for a wrapper around a base rule, taking both rules' hyperparameters in one dict.

    ``wrapped(reference.lookahead, reference.lamb, ("sync_rate", "sync_period"))`` has ``init(params, **hp)``
    and ``step(params, grads, state, **hp)`` like any single rule, so ``verify``/``run_case`` can drive it.
    """

    def __init__(self, wrapper: Any, base: Any, wrapper_hypers: Sequence[str]) -> None:
        self.wrapper, self.base, self.names = wrapper, base, tuple(wrapper_hypers)

    def _split(self, hp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        own = {k: v for k, v in hp.items() if k in self.names}
        return {k: v for k, v in hp.items() if k not in self.names}, own

    def init(self, params: Any, **hp: Any) -> Any:
        base_hp, own = self._split(hp)
        return self.wrapper.init(params, self.base, base_hp, **own)

    def step(self, params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        base_hp, own = self._split(hp)
        return self.wrapper.step(params, grads, state, self.base, base_hp, **own)


class negated:  # noqa: N801
    """The reference of ``maximize=True``: the same rule, fed -g."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule

    def init(self, params: Any, **hp: Any) -> Any:
        return self.rule.init(params, **hp)

    def step(self, params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        return self.rule.step(params, [-np.asarray(g) for g in grads], state, **hp)
