"""Loading checkpoints written by holocron 0.3.0's optimizers: the one place that knows its key names.

holocron 0.3.0 names buffers after torch's Adam (``exp_avg``, ``exp_avg_sq``, ...), keeps ``step`` as a Python
int, and stores some group keys we do not have. ``translate`` maps them to our vocabulary (the spec's symbols,
a float64 0-d ``step``). Where holocron's buffer means something else (errata rows 15, 20, 30), the mapping is
the closest exact one, noted per key below; training continues from it.
"""

from __future__ import annotations

from typing import Any

import torch

from ._base import STEP_DTYPE

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


def is_holocron(state_dict: dict[str, Any]) -> bool:
    """A holocron 0.3.0 checkpoint: an int step or one of its buffer names."""
    for st in state_dict.get("state", {}).values():
        if isinstance(st, dict) and (isinstance(st.get("step"), int) or "exp_avg" in st or "momentum_buffer" in st):
            return True
    return False


def translate(rule: str, groups: list[dict[str, Any]], state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` with holocron 0.3.0's names mapped to ours and every group completed from ``groups``
    (the optimizer's current groups: keys the checkpoint lacks keep their current value, keys we do not
    have are dropped). A state_dict of ours passes through with its values unchanged."""
    if len(groups) != len(state_dict["param_groups"]):
        return state_dict  # torch's own load_state_dict says what is wrong
    saved_groups = [
        {**{k: v for k, v in cur.items() if k != "params"}, **{k: v for k, v in saved.items() if k in cur}}
        for cur, saved in zip(groups, state_dict["param_groups"])
    ]
    out = {**state_dict, "param_groups": saved_groups}
    if not is_holocron(state_dict):
        return out
    keys, state = KEYS[rule], {}
    group_of = {i: g for g in saved_groups for i in g["params"]}
    for idx, st in state_dict["state"].items():
        new = {keys[k]: v for k, v in st.items() if k in keys}
        step = st.get("step", 1)  # holocron's LARS keeps no step count
        new["step"] = torch.tensor(float(step), dtype=STEP_DTYPE)
        if "W" in new:
            new["W"] = new["W"].reshape(())
        if rule == "adabelief":
            beta2, eps = group_of[idx]["betas"][1], group_of[idx]["eps"]
            for k in ("s", "s_max"):
                if k in new:
                    new[k] = new[k] + eps * (1 - beta2**step) / (1 - beta2)
        state[idx] = new
    out["state"] = state
    return out
