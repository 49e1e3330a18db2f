"""Hypothesis strategies drawn from the registry: valid hyperparameters, parameter shapes and values.

These are what ``holocron_torch.testing.verify`` and holocron-torch's own suite draw from; they know no
rule by name, only the ``Hyper`` kinds of ``reference._spec``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from reference._spec import Hyper, Rule

__all__ = ["hyper_value", "hyperparameters", "shapes", "arrays", "tensor_lists"]

#: shapes covering 0-d, one element, vectors, matrices and conv-like 4-d tensors
SHAPES: tuple[tuple[int, ...], ...] = ((), (1,), (5,), (3, 4), (1, 7), (4, 2, 2, 2))


def hyper_value(h: Hyper) -> st.SearchStrategy[Any]:
    """Valid values of one hyperparameter, from its ``sample`` range. No subnormal reals, as for the elements: with
    λ = 5e-324, λ‖θ‖ is subnormal, and where a rule divides by it (LARS, LAMB, RaLars trust ratios) the reference's
    scaled norm overflows the ratio to inf while torch's norm underflows to 0 (ratio 1): no digits to compare
    (found by the thorough profile)."""
    if h.kind == "real":
        lo, hi = h.sample
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if h.kind == "betas":
        return st.tuples(*(_beta(lo, hi) for lo, hi in h.sample))
    if h.kind == "flag":
        return st.booleans()
    if h.kind == "period":
        return st.integers(*h.sample)
    return st.sampled_from(h.sample)  # clip, dof, warmup: a few representative values


def _beta(lo: float, hi: float) -> st.SearchStrategy[float]:
    """A beta in [lo, hi], skipping (0, 1e-3): with 0 < β < 1e-3 an EMA equals its input to within rounding, so
    a difference like AdaBelief's g - m is pure rounding noise in any implementation (no digits to compare)."""
    if lo > 0.0:
        return st.floats(lo, hi)
    return st.one_of(st.just(0.0), st.floats(1e-3, hi))


def _valid(rule: Rule, hp: dict[str, Any]) -> bool:
    try:
        rule.validate(hp)
    except ValueError:
        return False
    return True


def hyperparameters(rule: Rule, **fixed: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts of valid hyperparameters for ``rule`` (cross-constraints respected); ``fixed`` pins some."""
    parts = {h.name: st.just(fixed[h.name]) if h.name in fixed else hyper_value(h) for h in rule.hypers}
    return st.fixed_dictionaries(parts).filter(lambda hp: _valid(rule, hp))


def shapes() -> st.SearchStrategy[tuple[int, ...]]:
    return st.sampled_from(SHAPES)


#: element values: ordinary ones plus exact zeros, tiny and large magnitudes
ELEMENTS = st.one_of(
    st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False),
    st.sampled_from([0.0, 1e-6, -1e-6, 1e-3, 50.0, -50.0]),
)


def arrays(shape: tuple[int, ...], elements: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[np.ndarray]:
    n = int(np.prod(shape)) if shape else 1
    return st.lists(ELEMENTS if elements is None else elements, min_size=n, max_size=n).map(
        lambda xs: np.array(xs, dtype=np.float64).reshape(shape)
    )


@st.composite
def tensor_lists(draw, n_tensors: tuple[int, int] = (1, 3)) -> list[np.ndarray]:
    """A list of arrays of drawn shapes (the parameters of a small model)."""
    k = draw(st.integers(*n_tensors))
    return [draw(arrays(draw(shapes()))) for _ in range(k)]
