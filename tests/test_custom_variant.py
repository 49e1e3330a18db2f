"""The README's worked example: a user's own rule (Lion, arXiv:2302.06675, in examples/lion.py) verified with the
public harness, and a deliberately wrong copy that the harness catches with a shrunk counterexample."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from examples.lion import Lion, lion_reference
from holocron_torch.testing import Mismatch, verify

HYPER = st.fixed_dictionaries(
    {
        "lr": st.floats(1e-4, 0.1),
        "betas": st.tuples(st.floats(0, 0.99), st.floats(0, 0.999)),
        "weight_decay": st.floats(0, 0.1),
    }
)


def test_lion_matches_its_reference():
    verify(Lion, lion_reference, hyperparameters=HYPER, state=("m",))  # no step kept: compare_step=None skips it


def test_a_wrong_lion_is_caught_with_a_counterexample():
    with pytest.raises(Mismatch, match="parameter") as caught:
        verify(lambda groups: Lion(groups, sign_bug=True), lion_reference, hyperparameters=HYPER, state=("m",))
    assert "failing case: Case(shapes=" in str(caught.value) and "'betas':" in str(caught.value)
