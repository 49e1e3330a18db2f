"""holocron_torch.testing: verify a torch optimizer against a NumPy reference rule, step for step, with
Hypothesis. holocron-torch's own conformance suite runs on this same engine.

>>> from hypothesis import strategies as st
>>> from holocron_torch.testing import verify
>>> verify(MyAdam, my_numpy_rule, hyperparameters=st.fixed_dictionaries({"lr": st.floats(1e-4, 0.1)}),
...        state=("m", "v"))

On a mismatch, Hypothesis shrinks the scenario and the error names the step, group, tensor and buffer, with
the expected and the actual value; the falsifying ``Case`` (shapes, hyperparameters, values) is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import strategies
from .harness import TOLERANCE, Case, Mismatch, run_case

__all__ = ["Case", "Mismatch", "TOLERANCE", "cases", "negated", "run_case", "strategies", "verify", "wrapped"]


@st.composite
def cases(
    draw: Any,
    hyperparameters: st.SearchStrategy[dict[str, Any]],
    *,
    max_steps: int = 20,
    max_tensors: int = 3,
    max_groups: int = 2,
    elements: st.SearchStrategy[float] | None = None,
) -> Case:
    """Scenarios: 1..max_tensors tensors of drawn shapes and values, 1..max_steps steps, 1..max_groups groups.

    Step 1's gradients are drawn element by element (zeros, tiny and large values included); later steps
    perturb them with a seeded normal walk at a drawn scale, so that long runs stay cheap to generate.
    """
    elements = strategies.ELEMENTS if elements is None else elements
    n = draw(st.integers(1, max_tensors))
    shapes = [draw(strategies.shapes()) for _ in range(n)]
    params = [draw(strategies.arrays(s, elements)) for s in shapes]
    first = [draw(strategies.arrays(s, elements)) for s in shapes]
    steps = draw(st.integers(1, max_steps))
    scale = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grads = [first]
    for _ in range(steps - 1):
        grads.append([g + scale * rng.standard_normal(g.shape) for g in grads[-1]])
    k = draw(st.integers(1, min(max_groups, n)))
    owner = [i % k for i in range(n)]  # deterministic split; which tensors share a group is not the point
    groups = [([i for i in range(n) if owner[i] == g], draw(hyperparameters)) for g in range(k)]
    return Case(params=params, grads=grads, groups=groups)


def verify(
    optimizer: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
    reference: Any,
    *,
    hyperparameters: st.SearchStrategy[dict[str, Any]],
    state: Callable[[dict[str, Any]], Sequence[str]] | Sequence[str] = (),
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    rtol: float | None = None,
    max_steps: int = 20,
    elements: st.SearchStrategy[float] | None = None,
    compare_step: bool = True,
) -> None:
    """Property test: for every drawn scenario, ``optimizer`` equals ``reference`` after every step.

    Args:
        optimizer: a torch optimizer class, or any callable taking a list of param-group dicts.
        reference: a module or object with ``init``/``step`` (see holocron_torch.testing.harness).
        hyperparameters: a strategy of hyperparameter dicts (each group draws its own).
        state: the state buffers to compare (or a function of the hyperparameters returning them).
        dtype, device: where the torch optimizer runs; the reference is always float64 NumPy.
        rtol: tolerance (default TOLERANCE[dtype]); see run_case for how it is applied.
        max_steps: the longest run drawn.
        elements: a strategy for element values (default: strategies.ELEMENTS).
        compare_step: also compare ``optimizer.state[p]["step"]`` with the reference State's ``t``.

    Raises:
        Mismatch: with the shrunk counterexample, which Hypothesis prints as ``Falsifying example``.
    """

    @given(case=cases(hyperparameters, max_steps=max_steps, elements=elements))
    def check(case: Case) -> None:
        run_case(
            optimizer, reference, case, state=state, dtype=dtype, device=device, rtol=rtol, compare_step=compare_step
        )

    check()


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
