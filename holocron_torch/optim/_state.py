"""``load_state_dict`` for the rule optimizers: torch.optim's contract, checked at load.

Whatever torch.optim's own optimizers load, ours load and continue bitwise: ``step`` as a Python int or float or
as a tensor of one element of any real dtype (kept as our float64 0-d count on the parameter's device, with no
rounding on the way: torch's own load would cast it to float32 in a ``fused=True`` group), ``param_names`` from
optimizers built on ``named_parameters()``, any param-group key a scheduler or a user added (``initial_lr``, ...),
entries of ``state`` that are not a parameter's (a state_dict pre-hook's, a load post-hook's), and the load
pre-hooks (which run first, as in torch, and may replace the dict) and post-hooks.

What cannot be right is refused here, with a ValueError or TypeError that names the problem, instead of failing
later inside ``step()``: a wrapper's state dict (one with a ``"base"`` entry), groups whose count or sizes differ,
hyperparameters the constructor would refuse (each loaded group goes through the constructor's own
``_validate_group``), a parameter's state with missing or unknown buffers, a buffer that is not a real
floating-point tensor shaped like its parameter's buffer, and a step that is not a non-negative whole number.
holocron 0.3.0 checkpoints are recognised by their buffer names and translated first (see ``_compat``).

Nothing is changed when a load is refused: the optimizer keeps its groups and state.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import _compat
from ._base import STEP_DTYPE

if TYPE_CHECKING:
    from ._base import RuleOptimizer

__all__ = ["load_state_dict", "step_count"]


def step_count(value: Any, where: str) -> float:
    """The step count t held by ``value`` (a Python int or float, or a tensor of one element of any real dtype),
    as an exact float; TypeError for anything else, ValueError unless t is a whole number >= 0."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{where}: step must be a number or a one-element tensor, got shape {tuple(value.shape)}")
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{where}: step must hold a real number, got a {value.dtype} tensor")
        t = float(value.detach().reshape(()).item())  # float64 holds every float32 value and every int below 2^53
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        t = float(value)
    else:
        raise TypeError(f"{where}: step must be a number or a one-element tensor, got {type(value).__name__}")
    if not (math.isfinite(t) and t >= 0 and t == math.floor(t)):
        raise ValueError(f"{where}: step must be a whole number >= 0, got {t!r}")
    return t


def _buffer_shape(opt: RuleOptimizer, name: str, p: Tensor, group: dict[str, Any]) -> torch.Size:
    """The shape the optimizer gives buffer ``name`` of ``p`` (e.g. TAdam's W is 0-d): its own initial state,
    built on the meta device (no memory)."""
    meta = torch.empty(p.shape, dtype=p.dtype, device="meta")
    return opt._initial_state(name, meta, meta, group).shape


def _param_state(opt: RuleOptimizer, p: Tensor, group: dict[str, Any], entry: Any, where: str) -> dict[str, Any]:
    """A parameter's loaded state, checked and cast: buffers to the parameter's dtype and device (as torch does),
    the step to a new float64 0-d tensor on the parameter's device."""
    if not isinstance(entry, Mapping):
        raise TypeError(f"{where}: a parameter's state must be a dict, got {type(entry).__name__}")
    if not entry:
        return {}  # no step taken yet: created at the first step, as for a new optimizer
    fields = opt._fields(group)
    expected = {"step", *fields}
    missing, unknown = expected - set(entry), set(entry) - expected
    if missing or unknown:
        flags = {flag: group[flag] for flag in opt.spec().optional_state.values()}
        raise ValueError(
            f"{where}: {type(opt).__name__} keeps {sorted(expected)}{f' (with {flags})' if flags else ''}; "
            f"the loaded state {f'lacks {sorted(missing)}' if missing else ''}"
            f"{' and ' if missing and unknown else ''}{f'has unknown {sorted(unknown)}' if unknown else ''}"
        )
    out: dict[str, Any] = {
        "step": torch.tensor(step_count(entry["step"], where), dtype=STEP_DTYPE, device=p.device),
    }
    for name in fields:
        value = entry[name]
        if not isinstance(value, Tensor):
            raise TypeError(f"{where}: buffer {name!r} must be a tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{where}: buffer {name!r} must be a real floating-point tensor, got {value.dtype}")
        shape = _buffer_shape(opt, name, p, group)
        if value.shape != shape:
            raise ValueError(
                f"{where}: buffer {name!r} has shape {tuple(value.shape)}, the parameter's needs {tuple(shape)}"
            )
        out[name] = value.to(dtype=p.dtype, device=p.device)
    return out


#: what marks a Lookahead/Scout state dict: its per-parameter keys, or the previous format's "base" entry (not the
#: groups' sync_rate/sync_period: a wrapped optimizer's own state_dict() has them too, and loads into a bare one)
_WRAPPER_STATE_KEYS = ("phi", "history", "fast_steps")


def _wrapper_sign(sd: Mapping[str, Any]) -> str:
    """What shows ``sd`` to be a wrapper's state dict (empty if nothing does)."""
    if "base" in sd:
        return "a 'base' entry"
    state = sd.get("state")
    if isinstance(state, Mapping):
        for entry in state.values():
            keys = [k for k in _WRAPPER_STATE_KEYS if isinstance(entry, Mapping) and k in entry]
            if keys:
                return f"{keys} in a parameter's state"
    return ""


def load_state_dict(opt: RuleOptimizer, state_dict: Mapping[str, Any]) -> None:
    """Load ``state_dict`` into ``opt`` (see the module's docstring for what is accepted and what is refused)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
    sd = dict(state_dict)  # a shallow copy, as torch makes (a hook that edits a nested group edits the caller's)
    for hook in opt._optimizer_load_state_dict_pre_hooks.values():
        result = hook(opt, sd)
        if result is not None:
            sd = result
    name = type(opt).__name__
    wrapper_sign = _wrapper_sign(sd)
    if wrapper_sign:
        raise ValueError(
            f"this is a wrapper's state dict (Lookahead/Scout: it has {wrapper_sign}); load it into the same wrapper "
            f"around {name}"
        )
    for key in ("state", "param_groups"):
        if key not in sd:
            raise ValueError(f"state_dict has no {key!r} entry (got {sorted(map(str, sd))})")
    saved_state, saved_groups = sd["state"], sd["param_groups"]
    if not isinstance(saved_state, Mapping):
        raise TypeError(f"state_dict['state'] must be a dict, got {type(saved_state).__name__}")
    if not isinstance(saved_groups, (list, tuple)) or not all(
        isinstance(g, Mapping) and isinstance(g.get("params"), (list, tuple)) for g in saved_groups
    ):
        raise TypeError("state_dict['param_groups'] must be a list of dicts, each with a 'params' list")
    groups = opt.param_groups
    if len(groups) != len(saved_groups):
        raise ValueError(
            f"loaded state dict has a different number of parameter groups ({len(saved_groups)}, "
            f"{name} has {len(groups)})"
        )
    for i, (cur, saved) in enumerate(zip(groups, saved_groups)):
        if len(cur["params"]) != len(saved["params"]):
            raise ValueError(
                f"loaded state dict contains a parameter group that doesn't match the size of optimizer's group: "
                f"param_groups[{i}] has {len(saved['params'])} parameters, {name}'s has {len(cur['params'])}"
            )
    saved_ids = [i for g in saved_groups for i in g["params"]]
    if len(set(saved_ids)) != len(saved_ids):
        raise ValueError("state_dict['param_groups'] lists a parameter id more than once")
    holocron = _compat.is_holocron(opt.rule, saved_state, set(saved_ids))

    # the groups: the loaded values, completed from the current group for keys the checkpoint lacks
    # (an older checkpoint, holocron's), each validated exactly as the constructor validates a group
    new_groups: list[dict[str, Any]] = []
    for i, (cur, saved) in enumerate(zip(groups, saved_groups)):
        group = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
        if holocron:
            group = {k: v for k, v in group.items() if k in cur or k not in _compat.GROUP_KEYS}
        for k, v in cur.items():
            if k not in group and k != "params":
                group[k] = v
        group["params"] = cur["params"]
        try:
            opt._validate_group(group)
        except (TypeError, ValueError, RuntimeError) as e:
            raise type(e)(f"loaded param_groups[{i}]: {e}") from e
        new_groups.append(group)

    id_map = dict(zip(saved_ids, (p for g in groups for p in g["params"])))
    group_of = {i: new_groups[gi] for gi, g in enumerate(saved_groups) for i in g["params"]}
    if holocron:
        saved_state = _compat.translate(opt.rule, saved_state, group_of)
    labels = {}
    for g, saved in zip(new_groups, saved_groups):
        names = g.get("param_names")
        for j, i in enumerate(saved["params"]):
            named = isinstance(names, (list, tuple)) and len(names) == len(saved["params"])
            labels[i] = f"state of parameter {i!r}" + (f" ({names[j]})" if named else "")
    state: defaultdict[Any, Any] = defaultdict(dict)
    for key, entry in saved_state.items():
        if key in id_map:
            state[id_map[key]] = _param_state(opt, id_map[key], group_of[key], entry, labels[key])
        else:  # not a parameter's (a hook's entry): kept as it is, as torch keeps it
            state[key] = entry
    opt.__setstate__({"state": state, "param_groups": new_groups})
    for hook in opt._optimizer_load_state_dict_post_hooks.values():
        hook(opt)
