"""Lookahead and Scout: optimizers that wrap any torch optimizer and share its param groups.

One small sync base holds the plumbing (slow weights φ, the fast-step counts, state_dict, param groups); each
wrapper is a policy: the rate ρ at which φ moves toward the fast weights at a sync. The equations are those of
``reference/lookahead.py`` and ``reference/scout.py``.

A wrapper is a torch optimizer in its own right, by torch.optim's conventions:

- ``param_groups`` *is* the base optimizer's list (an LR scheduler on the wrapper moves the base's lr and betas);
  each group also holds the wrapper's ``sync_rate`` and ``sync_period``. ``defaults`` is the base's defaults plus
  the wrapper's two (what OneCycleLR, CyclicLR and the frameworks' schedules read); only the wrapper's keys are
  validated here, the base validates its own.
- its state is made at the first step, as torch.optim's is: φ_0 = θ at the first step (so that a
  ``model.load_state_dict`` or ``model.to(dtype)`` between building the wrapper and training is respected), and
  for a parameter first seen later (a group added after some steps), at the step it first takes part in.
- ``state`` maps each parameter to one dict: the base optimizer's entries and the wrapper's (``phi``, Scout's
  ``history``, and ``fast_steps``, the parameter's fast-step count, a Python int); reads and writes go to the
  optimizer that owns the key. ``state_dict()`` is torch's format (``state`` keyed by parameter index,
  ``param_groups``), one entry per parameter holding both, so torch.distributed.checkpoint (FSDP2 included),
  ``torch.load(weights_only=True)`` and the frameworks that move ``optimizer.state`` need no recipe.
"""

from __future__ import annotations

import numbers
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping, MutableMapping
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
#: the per-parameter keys any wrapper writes (a state dict holding another wrapper's keys is refused)
_ALL_OWN_KEYS = ("phi", "history", "fast_steps")


class _ParamState(MutableMapping):
    """``wrapper.state[p]``: the base optimizer's entries for ``p`` and the wrapper's, as one dict. A key the
    wrapper owns (``phi``, ``history``, ``fast_steps``) is read and written in the wrapper's state, any other in
    the base's (created there on the first write, as torch's defaultdict state does)."""

    __slots__ = ("_opt", "_p")

    def __init__(self, opt: _SyncWrapper, p: Tensor) -> None:
        self._opt, self._p = opt, p

    def _parts(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        return self._opt.base_optimizer.state.get(self._p, {}), self._opt._slow.get(self._p, {})

    def __getitem__(self, key: str) -> Any:
        base, own = self._parts()
        if key in own:
            return own[key]
        return base[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._opt.own_keys:
            self._opt._slow[self._p][key] = value
        else:
            base = self._opt.base_optimizer.state
            if self._p not in base:
                base[self._p] = {}
            base[self._p][key] = value

    def __delitem__(self, key: str) -> None:
        target = self._opt._slow if key in self._opt.own_keys else self._opt.base_optimizer.state
        entry = target.get(self._p, {})
        del entry[key]  # KeyError if absent
        if not entry:
            del target[self._p]

    def __iter__(self) -> Iterator[str]:
        base, own = self._parts()
        yield from (k for k in base if k not in own)
        yield from own

    def __len__(self) -> int:
        base, own = self._parts()
        return len(own) + sum(1 for k in base if k not in own)

    def __repr__(self) -> str:
        return repr(dict(self))


class _JointState(MutableMapping):
    """``wrapper.state``: parameter -> :class:`_ParamState` (the base's state and the wrapper's together).
    A key that is not a tensor (a hook's entry in the base's state) is the base's."""

    __slots__ = ("_opt",)

    def __init__(self, opt: _SyncWrapper) -> None:
        self._opt = opt

    def __getitem__(self, p: Any) -> Any:
        if isinstance(p, Tensor):
            return _ParamState(self._opt, p)
        return self._opt.base_optimizer.state[p]

    def __setitem__(self, p: Any, value: Any) -> None:
        base, own = self._opt.base_optimizer.state, self._opt._slow
        if not isinstance(p, Tensor) or not isinstance(value, Mapping):
            base[p] = value
            return
        value = dict(value)
        mine = {k: value.pop(k) for k in self._opt.own_keys if k in value}
        for target, part in ((own, mine), (base, value)):
            if part:
                target[p] = part
            else:
                target.pop(p, None)

    def __delitem__(self, p: Any) -> None:
        found = [m.pop(p, None) is not None for m in (self._opt.base_optimizer.state, self._opt._slow)]
        if not any(found):
            raise KeyError(p)

    def __iter__(self) -> Iterator[Any]:
        base, own = self._opt.base_optimizer.state, self._opt._slow
        yield from base
        yield from (p for p in own if p not in base)

    def __len__(self) -> int:
        base, own = self._opt.base_optimizer.state, self._opt._slow
        return len(base) + sum(1 for p in own if p not in base)

    def __repr__(self) -> str:
        return repr({k: self[k] for k in self})


class _SyncWrapper(torch.optim.Optimizer):
    """Base of the wrappers. ``param_groups`` *is* the base optimizer's list, so LR schedulers attached to
    the wrapper reach the base lr; the wrapper's own hyperparameters live in those groups too."""

    rule: ClassVar[str]
    #: the wrapper's per-parameter state keys
    own_keys: ClassVar[tuple[str, ...]] = ("phi", "fast_steps")

    def __init__(self, base_optimizer: torch.optim.Optimizer, sync_rate: float = 0.5, sync_period: int = 6) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"base_optimizer must be a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        if isinstance(base_optimizer, _SyncWrapper):
            raise TypeError(
                f"base_optimizer is a {type(base_optimizer).__name__}: a wrapper inside a wrapper would share one "
                "sync_rate and sync_period (they live in the shared param groups); wrap the base optimizer once"
            )
        hp = reference.RULES[self.rule].validate({"sync_rate": sync_rate, "sync_period": sync_period})
        self.base_optimizer = base_optimizer
        # what torch.optim.Optimizer.__init__ sets up, without re-adding the base optimizer's groups
        self.defaults = {**base_optimizer.defaults, **hp}
        for name in _HOOKS:
            setattr(self, name, OrderedDict())
        self._patch_step_function()
        self._slow: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self._fill_groups()

    @property
    def hyper_keys(self) -> tuple[str, ...]:
        """The wrapper's own hyperparameters (the other keys of a group are the base optimizer's)."""
        return tuple(h.name for h in reference.RULES[self.rule].hypers)

    # ---- param groups are the base optimizer's ------------------------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = value

    @property
    def state(self) -> _JointState:  # type: ignore[override]
        """Per parameter, the base optimizer's state and the wrapper's (φ, Scout's history, the fast-step count)."""
        return _JointState(self)

    @state.setter
    def state(self, value: Mapping[Any, Any]) -> None:
        self.base_optimizer.state = defaultdict(dict)
        self._slow = defaultdict(dict)
        joint = _JointState(self)
        for p, v in value.items():
            joint[p] = v

    def _validate(self, hp: dict[str, Any], where: str) -> None:
        try:
            reference.RULES[self.rule].validate(hp)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{type(self).__name__}: {where}: {e}") from None

    def _fill_groups(self) -> None:
        """A group the wrapper has not seen (added to the base directly, or a new ``param_groups`` list) gets the
        wrapper's defaults for the keys it lacks."""
        for group in self.param_groups:
            for key in self.hyper_keys:
                group.setdefault(key, self.defaults[key])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """The base optimizer's add_param_group, with the wrapper's keys (sync_rate, sync_period) checked first:
        a refused group leaves both the base and the wrapper as they were."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        own = {k: param_group.get(k, self.defaults[k]) for k in self.hyper_keys}
        self._validate(own, "add_param_group")
        before = len(self.param_groups)
        self.base_optimizer.add_param_group(param_group)
        if len(self.param_groups) > before:
            self.param_groups[-1].update(own)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def __repr__(self) -> str:
        inner = super().__repr__().split(" (", 1)[1]
        return f"{type(self).__name__}({type(self.base_optimizer).__name__}) ({inner}"

    # ---- state --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's format: ``state`` (parameter index -> the base optimizer's entries and the wrapper's ``phi``,
        ``fast_steps`` and Scout's ``history``) and ``param_groups`` (the base's keys and the wrapper's)."""
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        self._fill_groups()
        sd = self.base_optimizer.state_dict()
        index = {}
        for group, packed in zip(self.param_groups, sd["param_groups"]):
            index.update({id(p): i for p, i in zip(group["params"], packed["params"])})
        state = dict(sd["state"])
        for p, own in self._slow.items():
            if id(p) not in index:  # a parameter no longer in any group
                continue
            i = index[id(p)]
            entry = dict(state.get(i, {}))
            clash = sorted(set(entry) & set(own))
            if clash:
                raise RuntimeError(
                    f"{type(self).__name__}: the base optimizer's state uses the wrapper's key(s) {clash}"
                )
            entry.update(own)
            state[i] = entry
        out = {"state": state, "param_groups": sd["param_groups"]}
        for hook in self._optimizer_state_dict_post_hooks.values():
            result = hook(self, out)
            if result is not None:
                out = result
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this wrapper (also the previous format: the base's under ``"base"``, one
        ``"fast_steps"`` count for all). Everything is checked before anything is changed; a ValueError or
        TypeError names what is wrong: a bare optimizer's state dict (no sync_rate / sync_period in its groups),
        the other wrapper's, sync hyperparameters the constructor would refuse, a count that is not a
        non-negative int, slow weights or a history that do not fit their parameter."""
        name = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}.load_state_dict: state_dict must be a dict, got {type(state_dict).__name__}")
        sd = dict(state_dict)
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, sd)
            if result is not None:
                sd = result
        if "base" in sd:
            sd = self._from_previous_format(sd)
        for key in ("state", "param_groups"):
            if key not in sd:
                raise ValueError(f"{name}.load_state_dict: state_dict has no {key!r} entry")
        groups, saved_groups = self.param_groups, sd["param_groups"]
        if not isinstance(sd["state"], Mapping):
            raise TypeError(f"state_dict['state'] must be a dict, got {type(sd['state']).__name__}")
        if not isinstance(saved_groups, (list, tuple)) or not all(
            isinstance(g, Mapping) and isinstance(g.get("params"), (list, tuple)) for g in saved_groups
        ):
            raise TypeError("state_dict['param_groups'] must be a list of dicts, each with a 'params' list")
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
            )
        counts = Counter(i for g in saved_groups for i in g["params"])
        repeated = sorted(repr(i) for i, n in counts.items() if n > 1)
        if repeated:
            raise ValueError(
                f"parameter id(s) {', '.join(repeated)} appear more than once in state_dict['param_groups']"
            )
        for i, g in enumerate(saved_groups):
            missing = [k for k in self.hyper_keys if k not in g]
            if missing:
                raise ValueError(
                    f"{name}.load_state_dict: param group {i} has no {missing}: this is not a {name}'s state dict "
                    f"(a bare optimizer's? load that into {name}.base_optimizer)"
                )
            self._validate({k: g[k] for k in self.hyper_keys}, f"load_state_dict: param group {i}")
        id_map, group_of = {}, {}
        for g, s in zip(groups, saved_groups):
            for p, i in zip(g["params"], s["params"]):
                id_map[i], group_of[i] = p, s
        base_state, own_state = {}, {}
        for key, entry in sd["state"].items():
            if key not in id_map or not isinstance(entry, Mapping):
                base_state[key] = entry
                continue
            own = {k: entry[k] for k in _ALL_OWN_KEYS if k in entry}
            rest = {k: v for k, v in entry.items() if k not in own}
            if rest:
                base_state[key] = rest
            if own:
                own_state[id_map[key]] = self._check_own(own, id_map[key], group_of[key], key)
        stripped = [{k: v for k, v in s.items() if k not in self.hyper_keys} for s in saved_groups]
        self.base_optimizer.load_state_dict({**sd, "state": base_state, "param_groups": stripped})
        for g, s in zip(self.param_groups, saved_groups):
            g.update({k: s[k] for k in self.hyper_keys})
        self._slow = defaultdict(dict, own_state)
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def _check_own(self, own: dict[str, Any], p: Tensor, group: Mapping[str, Any], key: Any) -> dict[str, Any]:
        """One parameter's loaded wrapper state, checked and cast to the parameter's dtype and device."""
        name, where = type(self).__name__, f"{type(self).__name__}.load_state_dict: parameter {key!r}"
        foreign = sorted(set(own) - set(self.own_keys))
        if foreign:
            raise ValueError(f"{where} has {foreign}, which {name} does not keep: another wrapper's state dict?")
        missing = sorted(set(self.own_keys) - set(own))
        if missing:
            raise ValueError(f"{where} has {sorted(own)} but not {missing}")
        n = own["fast_steps"]
        if isinstance(n, Tensor) and n.numel() == 1 and not (n.is_floating_point() or n.is_complex()):
            n = int(n.item())
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{where}: fast_steps must be a non-negative int, got {n!r}")
        if n < 0:
            raise ValueError(f"{where}: fast_steps must be a non-negative int, got {n!r}")
        out = {"fast_steps": int(n)}
        for k in self.own_keys:
            if k == "fast_steps":
                continue
            v = own[k]
            want = self._own_shape(k, p, group)
            if not isinstance(v, Tensor) or not v.is_floating_point() or tuple(v.shape) != want:
                got = f"shape {tuple(v.shape)} {v.dtype}" if isinstance(v, Tensor) else type(v).__name__
                raise ValueError(f"{where}: {k} must be a floating-point tensor of shape {want}, got {got}")
            out[k] = v.to(dtype=p.dtype, device=p.device) if p.is_floating_point() else v.to(device=p.device)
        return out

    def _own_shape(self, key: str, p: Tensor, group: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(p.shape)

    def _from_previous_format(self, sd: dict[str, Any]) -> dict[str, Any]:
        """The previous wrapper.py's state dict (the base's under "base", the wrapper's per-parameter φ and
        history, and one "fast_steps" count in ``state``) in today's format."""
        base, state = sd["base"], dict(sd.get("state", {}))
        n = state.pop("fast_steps", 0)
        merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.get("state", {}).items()}
        for k, own in state.items():
            if isinstance(own, Mapping) and "phi" in own:
                merged[k] = {**merged.get(k, {}), **own, "fast_steps": n}
            else:
                merged[k] = own
        return {k: v for k, v in sd.items() if k != "base"} | {"state": merged}

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "_slow": self._slow, "base_optimizer": self.base_optimizer}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "_slow" not in state:  # an old pickle: the wrapper's state was a plain dict with one count
            old = dict(state.pop("state", {}))
            n = old.pop("fast_steps", 0)
            state["_slow"] = defaultdict(dict, {p: {**v, "fast_steps": n} for p, v in old.items()})
        state.pop("param_groups", None)
        super().__setstate__(state)

    # ---- the step -----------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Before a step: every group has valid sync hyperparameters (checked first: a refused step changes
        nothing), then every parameter without slow weights gets them, φ_0 = θ (its value now)."""
        self._fill_groups()
        for i, group in enumerate(self.param_groups):
            self._validate({k: group[k] for k in self.hyper_keys}, f"param group {i}")
            self._check_group(group, i)
        for group in self.param_groups:
            for p in group["params"]:
                if p not in self._slow:
                    self._init_slow(p, group)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        """Hook: a policy's checks of a group's existing state before a step."""

    def _init_slow(self, p: Tensor, group: dict[str, Any]) -> None:
        """φ_0 = θ: the slow weights start as a copy of the parameter at its first step; no fast step yet."""
        self._slow[p] = {"phi": p.detach().clone(memory_format=torch.preserve_format), "fast_steps": 0}

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One base step; each parameter whose fast-step count reaches a multiple of its group's sync_period
        syncs: its slow weights move and the fast ones follow."""
        self._prepare()
        with torch.enable_grad():
            loss = self._base_step(closure)
        for group in self.param_groups:
            params = group["params"]
            for p in params:
                self._slow[p]["fast_steps"] += 1
            self._after_fast_step(group)
            k = group["sync_period"]
            due = [p for p in params if self._slow[p]["fast_steps"] % k == 0]
            if due:
                self._sync(due, self._sync_rate(group, due))
        return loss

    def _base_step(self, closure: Callable[[], Any] | None) -> Any:
        """The base optimizer's step, with its own step hooks but not torch's global optimizer hooks
        (``register_optimizer_step_pre_hook``): those run once per step, around the wrapper's."""
        base = self.base_optimizer
        step = getattr(type(base), "step", None)
        inner = getattr(step, "__wrapped__", None)
        if "step" in vars(base) or inner is None or not getattr(step, "hooked", False):
            # an instance-level step (a scheduler's or a framework's patch on the base): called as it is
            return base.step(closure) if closure is not None else base.step()
        args: tuple[Any, ...] = (base, closure) if closure is not None else (base,)
        kwargs: dict[str, Any] = {}
        for hook in base._optimizer_step_pre_hooks.values():
            result = hook(base, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"a step pre-hook must return None or (args, kwargs), got {result!r}")
                args, kwargs = result
        out = inner(*args, **kwargs)
        base._optimizer_step_code()
        for hook in base._optimizer_step_post_hooks.values():
            hook(base, args, kwargs)
        return out

    def _after_fast_step(self, group: dict[str, Any]) -> None:
        """Hook for policies that observe every fast step."""

    def _sync_rate(self, group: dict[str, Any], params: list[Tensor]) -> float | Tensor:
        return group["sync_rate"]

    def _sync(self, params: list[Tensor], rho: float | Tensor) -> None:
        """φ ← φ + ρ (θ - φ);  θ ← φ."""
        phi = [self._slow[p]["phi"] for p in params]
        torch._foreach_lerp_(phi, params, rho)
        copy_(params, phi)


class Lookahead(_SyncWrapper):
    r"""Lookahead, from "Lookahead optimizer: k steps forward, 1 step back".

    With n the parameter's fast-step count (base steps since its slow weights were made):

    .. math::
        \phi_0 = \theta \text{ at the first step}; \quad \text{each step: } \theta \leftarrow \text{base}(\theta),
        \ n \leftarrow n + 1; \quad \text{if } k \mid n: \ \phi \leftarrow \phi + \alpha(\theta - \phi),
        \ \theta \leftarrow \phi

    The slow weights are made at the first step (as torch.optim makes its state), so loading a model's weights
    or casting it between building the optimizer and training is respected.

    Args:
        base_optimizer: any torch.optim.Optimizer (its param groups become this wrapper's; not a wrapper).
        sync_rate: α in (0, 1].
        sync_period: k >= 1 fast steps between syncs.

    >>> opt = Lookahead(torch.optim.AdamW(model.parameters(), lr=3e-4))
    """

    rule = "lookahead"


class Scout(_SyncWrapper):
    r"""Scout: Lookahead whose sync rate grows when the fast steps were incoherent (holocron's rule).

    φ_0 = θ at the first step. Over the k fast steps since the last sync, per element, D are the k differences,
    s their standard deviation (Bessel), ``M = max |D - mean(D)|``; c_j is the mean of s/M over the elements of
    tensor j with M > 1e-6 max|D| (unsteady), C the mean of c_j over the tensors of the group that sync at this
    step and have such elements, and

    .. math:: \rho = \max(1 - C, \alpha), \quad \phi \leftarrow \phi + \rho(\theta - \phi), \quad \theta \leftarrow \phi

    (ρ = α when no element moved unevenly; holocron 0.3.0 instead discards the period: docs/errata.md).

    Args:
        base_optimizer: any torch.optim.Optimizer (not a wrapper).
        sync_rate: α in (0, 1], the lowest sync rate.
        sync_period: k >= 2 fast steps between syncs (fixed for a group once its history exists).
    """

    rule = "scout"
    own_keys = ("phi", "history", "fast_steps")

    def _init_slow(self, p: Tensor, group: dict[str, Any]) -> None:
        super()._init_slow(p, group)
        k = group["sync_period"]
        # the fast weights since the last sync: row 0 is φ, row i the weights after the i-th fast step
        # (stacked, so that a sharded DTensor p gives a history sharded like it, one dim further)
        self._slow[p]["history"] = torch.stack([p.detach()] + [torch.zeros_like(p.detach())] * k)

    def _own_shape(self, key: str, p: Tensor, group: Mapping[str, Any]) -> tuple[int, ...]:
        return (group["sync_period"] + 1, *p.shape) if key == "history" else tuple(p.shape)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        k = group["sync_period"]
        for p in group["params"]:
            st = self._slow.get(p)
            if st is not None and st["history"].shape[0] != k + 1:
                raise ValueError(
                    f"Scout: param group {index}: sync_period is {k} but its history holds "
                    f"{st['history'].shape[0] - 1} fast steps: a group's sync_period cannot change during training"
                )

    def _after_fast_step(self, group: dict[str, Any]) -> None:
        k = group["sync_period"]
        for p in group["params"]:
            st = self._slow[p]
            st["history"][(st["fast_steps"] - 1) % k + 1].copy_(p.detach())

    def _sync_rate(self, group: dict[str, Any], params: list[Tensor]) -> Tensor:
        cs, has = [], []
        for p in params:
            D = torch.diff(self._slow[p]["history"], dim=0)
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

    def _sync(self, params: list[Tensor], rho: float | Tensor) -> None:
        super()._sync(params, rho)
        for p in params:
            self._slow[p]["history"][0].copy_(self._slow[p]["phi"])
