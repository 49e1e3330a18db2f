"""The table the generic tests iterate over, derived from the reference registry (never listed by hand)."""

from __future__ import annotations

import holocron_torch.optim as optim
from reference import BASE_RULES, RULES, WRAPPERS
from reference._spec import Rule

__all__ = ["BASE", "WRAPPED", "torch_class", "RULES"]

BASE: list[str] = list(BASE_RULES)
#: every wrapper around two bases: one with a per-tensor norm, one with a previous-gradient buffer
WRAPPED: list[tuple[str, str]] = [(w, b) for w in WRAPPERS for b in ("lamb", "adan")]


def torch_class(rule: Rule) -> type:
    return getattr(optim, rule.cls)
