"""Lookahead and Scout: optimizers that wrap any torch optimizer and share its param groups.

One small sync base holds the plumbing (slow weights φ, the fast-step counter, state_dict, param groups);
each wrapper is a policy: the rate ρ at which φ moves toward the fast weights at a sync.
The equations are those of ``reference/lookahead.py`` and ``reference/scout.py``.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

import reference
from reference.scout import STEADY

from ._base import copy_, reduced

__all__ = ["Lookahead", "Scout"]

_HOOKS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


class _SyncWrapper(torch.optim.Optimizer):
    """Base of the wrappers. ``param_groups`` *is* the base optimizer's list, so LR schedulers attached to
    the wrapper reach the base lr; the wrapper's own hyperparameters live in those groups too."""

    rule: ClassVar[str]

    def __init__(self, base_optimizer: torch.optim.Optimizer, sync_rate: float = 0.5, sync_period: int = 6) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"base_optimizer must be a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        hp = reference.RULES[self.rule].validate({"sync_rate": sync_rate, "sync_period": sync_period})
        self.base_optimizer = base_optimizer
        # what torch.optim.Optimizer.__init__ sets up, without re-adding the base optimizer's groups
        self.defaults = dict(hp)
        for name in _HOOKS:
            setattr(self, name, OrderedDict())
        self._patch_step_function()
        self.state: defaultdict[Any, Any] = defaultdict(dict)
        self.state["fast_steps"] = 0
        for group in self.param_groups:
            self._adopt(group)

    # ---- param groups are the base optimizer's ------------------------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = value

    def _adopt(self, group: dict[str, Any]) -> None:
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        reference.RULES[self.rule].validate({k: group[k] for k in self.defaults})
        for p in group["params"]:
            self._init_slow(p, group)

    def _init_slow(self, p: Tensor, group: dict[str, Any]) -> None:
        """φ_0 = θ_0: the slow weights start as a copy of the parameters."""
        self.state[p]["phi"] = p.detach().clone(memory_format=torch.preserve_format)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.base_optimizer.add_param_group(param_group)
        self._adopt(self.param_groups[-1])

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    # ---- state --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The wrapper's own state (φ per parameter, the fast-step counter) and, under "base", the base's."""
        own = super().state_dict()
        own["base"] = self.base_optimizer.state_dict()
        return own

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict["base"])
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "base"})

    def __setstate__(self, state: dict[str, Any]) -> None:
        # load_state_dict hands us its (validated) copy of the groups; the base has already loaded its own
        if "base_optimizer" in self.__dict__:
            state = {k: v for k, v in state.items() if k != "param_groups"}
        super().__setstate__(state)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "base_optimizer": self.base_optimizer}

    # ---- the step -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One base step; every sync_period-th fast step, the slow weights move and the fast ones follow."""
        with torch.enable_grad():
            loss = self.base_optimizer.step(closure) if closure is not None else self.base_optimizer.step()
        self.state["fast_steps"] += 1
        n = self.state["fast_steps"]
        self._after_fast_step(n)
        for group in self.param_groups:
            if n % group["sync_period"] == 0:
                self._sync(group, self._sync_rate(group))
        return loss

    def _after_fast_step(self, n: int) -> None:
        """Hook for policies that observe every fast step."""

    def _sync_rate(self, group: dict[str, Any]) -> float | Tensor:
        return group["sync_rate"]

    def _sync(self, group: dict[str, Any], rho: float | Tensor) -> None:
        """φ ← φ + ρ (θ - φ);  θ ← φ."""
        params = list(group["params"])
        phi = [self.state[p]["phi"] for p in params]
        torch._foreach_lerp_(phi, params, rho)
        copy_(params, phi)


class Lookahead(_SyncWrapper):
    r"""Lookahead, from "Lookahead optimizer: k steps forward, 1 step back".

    .. math::
        \phi_0 = \theta_0; \quad \text{every } k \text{ fast steps: }
        \phi \leftarrow \phi + \alpha(\theta - \phi), \quad \theta \leftarrow \phi

    Args:
        base_optimizer: any torch.optim.Optimizer (its param groups become this wrapper's).
        sync_rate: α in (0, 1].
        sync_period: k >= 1 fast steps between syncs.

    >>> opt = Lookahead(torch.optim.AdamW(model.parameters(), lr=3e-4))
    """

    rule = "lookahead"


class Scout(_SyncWrapper):
    r"""Scout: Lookahead whose sync rate grows when the fast steps were incoherent (holocron's rule).

    Over the k fast steps since the last sync, per element, D are the k differences, s their standard deviation
    (Bessel), M = max |D - mean(D)|; c_j is the mean of s/M over the elements of tensor j with M > 1e-6 max|D|
    (unsteady), C the
    mean of c_j over the tensors that have such elements, and

    .. math:: \rho = \max(1 - C, \alpha), \quad \phi \leftarrow \phi + \rho(\theta - \phi), \quad \theta \leftarrow \phi

    (ρ = α when no element moved unevenly; holocron 0.3.0 instead discards the period: docs/errata.md).

    Args:
        base_optimizer: any torch.optim.Optimizer.
        sync_rate: α in (0, 1], the lowest sync rate.
        sync_period: k >= 2 fast steps between syncs.
    """

    rule = "scout"

    def _init_slow(self, p: Tensor, group: dict[str, Any]) -> None:
        super()._init_slow(p, group)
        k = group["sync_period"]
        # the fast weights since the last sync: row 0 is φ, row i the weights after the i-th fast step
        # (stacked, so that a sharded DTensor p gives a history sharded like it, one dim further)
        self.state[p]["history"] = torch.stack([p.detach()] + [torch.zeros_like(p.detach())] * k)

    def _after_fast_step(self, n: int) -> None:
        for group in self.param_groups:
            row = (n - 1) % group["sync_period"] + 1
            for p in group["params"]:
                self.state[p]["history"][row].copy_(p.detach())

    def _sync_rate(self, group: dict[str, Any]) -> Tensor:
        cs, has = [], []
        for p in group["params"]:
            D = torch.diff(self.state[p]["history"], dim=0)
            s = D.std(dim=0, correction=1)
            M = (D - D.mean(dim=0)).abs().amax(dim=0)
            valid = M > STEADY * D.abs().amax(dim=0)
            count = reduced(valid.sum())  # over the whole tensor (a DTensor: all-reduces of partial sums)
            ratio = reduced(torch.where(valid, s / torch.where(valid, M, 1.0), 0.0).sum())
            cs.append(torch.where(count > 0, ratio / count.clamp_min(1), 0.0))
            has.append(count > 0)
        c, h = torch.stack(cs), torch.stack(has).to(cs[0].dtype)
        C = (c * h).sum() / h.sum().clamp_min(1)
        rate = torch.tensor(group["sync_rate"], dtype=C.dtype, device=C.device)
        return torch.where(h.sum() > 0, torch.maximum(1 - C, rate), rate)

    def _sync(self, group: dict[str, Any], rho: float | Tensor) -> None:
        super()._sync(group, rho)
        for p in group["params"]:
            self.state[p]["history"][0].copy_(self.state[p]["phi"])
