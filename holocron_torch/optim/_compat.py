"""Loading checkpoints written by holocron 0.3.0's optimizers: the one place that knows its key names.

holocron 0.3.0 names buffers after torch's Adam (``exp_avg``, ``exp_avg_sq``, ...), keeps ``step`` as a Python
int, and stores some group keys we do not have. A checkpoint is recognised as holocron's by its buffer names (never
by the type of its ``step``: torch.optim itself loads a Python-number step); ``translate`` maps its per-parameter
state to our vocabulary (the spec's symbols). Where holocron's buffer means something else (errata rows 15, 20, 30),
the mapping is the closest exact one, noted per key below; training continues from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

#: holocron 0.3.0 state key -> ours, per rule
KEYS: dict[str, dict[str, str]] = {
    # holocron's buffer holds Σ m^k (g + λθ) without the local LR γ: kept as v (γ of past steps is not recoverable)
    "lars": {"momentum_buffer": "v"},
    "lamb": {"exp_avg": "m", "exp_avg_sq": "v"},
    "ralars": {"exp_avg": "m", "exp_avg_sq": "v"},
    "tadam": {"exp_avg": "m", "exp_avg_sq": "v", "W_t": "W", "max_exp_avg_sq": "v_max"},
    # holocron's s lacks the ε added at every step: restored exactly as s + ε (1 - β2^t) / (1 - β2)
    "adabelief": {"exp_avg": "m", "exp_avg_sq": "s", "max_exp_avg_sq": "s_max"},
    "adamp": {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "v_max"},
    # holocron stores v (the EMA of Δ) as exp_avg_sq and n as exp_avg_delta; its prev_grad is always 0 (its bug),
    # so the first step after loading uses Δ = g once
    "adan": {
        "exp_avg": "m",
        "exp_avg_sq": "v",
        "exp_avg_delta": "n",
        "prev_grad": "g_prev",
        "max_exp_avg_delta": "n_max",
    },
    "ademamix": {"exp_avg": "m1", "exp_avg_slow": "m2", "exp_avg_sq": "nu"},
}

#: per-parameter keys holocron 0.3.0 writes that are neither a buffer nor the step (dropped on load)
DROPPED: dict[str, frozenset[str]] = {"lamb": frozenset({"local_lr"}), "ralars": frozenset({"local_lr"})}

#: every param-group key holocron 0.3.0's optimizers write (those of its torch.optim.Adam parents included); those
#: our optimizer does not have are dropped from a holocron checkpoint's groups (any other key is kept, as torch does)
GROUP_KEYS = frozenset(
    {
        "alpha", "amsgrad", "betas", "capturable", "dampening", "decoupled_weight_decay", "differentiable", "dof",
        "eps", "foreach", "fused", "lr", "maximize", "momentum", "nesterov", "sma_inf", "weight_decay",
    }
)  # fmt: skip


def _holocron_names(rule: str) -> frozenset[str]:
    return frozenset(KEYS[rule]) | DROPPED.get(rule, frozenset()) | {"step"}


def is_holocron(rule: str, state: Mapping[Any, Any], param_ids: set[Any]) -> bool:
    """Whether a state dict's ``state`` (entries keyed by ``param_ids``; other keys are not a parameter's) was
    written by holocron 0.3.0's optimizer for ``rule``: every non-empty parameter entry holds only holocron's
    names for that rule (its buffers, ``step``, ``local_lr``), and at least one holds one of its buffers."""
    names = _holocron_names(rule)
    seen = False
    for idx, entry in state.items():
        if idx not in param_ids or not isinstance(entry, Mapping) or not entry:
            continue
        if not set(entry) <= names:
            return False
        seen = seen or bool(set(entry) & set(KEYS[rule]))
    return seen


def translate(rule: str, state: Mapping[Any, Any], group_of: Mapping[Any, Mapping[str, Any]]) -> dict[Any, Any]:
    """A holocron 0.3.0 ``state`` in our names: each parameter entry (``group_of`` maps its id to its loaded,
    completed param group) gets our buffer names, a ``step`` (holocron's LARS keeps none: 1, the count after
    which its buffer exists), TAdam's W as a 0-d tensor and AdaBelief's s with its ε back. Entries that are not a
    parameter's pass through."""
    keys, out = KEYS[rule], {}
    for idx, st in state.items():
        if idx not in group_of or not isinstance(st, Mapping) or not st:
            out[idx] = st
            continue
        new = {keys[k]: v for k, v in st.items() if k in keys}
        step = st.get("step", 1)
        new["step"] = step
        if isinstance(new.get("W"), torch.Tensor):
            new["W"] = new["W"].reshape(())
        if rule == "adabelief":
            beta2, eps = group_of[idx]["betas"][1], group_of[idx]["eps"]
            t = float(step.item()) if isinstance(step, torch.Tensor) else float(step)
            for k in ("s", "s_max"):
                if isinstance(new.get(k), torch.Tensor):
                    new[k] = new[k] + eps * (1 - beta2**t) / (1 - beta2)
        out[idx] = new
    return out


__all__ = ["DROPPED", "GROUP_KEYS", "KEYS", "is_holocron", "translate"]
