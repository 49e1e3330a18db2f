"""holocron-torch's reference: every update rule as plain float64 NumPy, one line per equation.

``RULES`` is the registry, the one list of rules: name, torch class name, reference module, hyperparameters
with defaults and valid ranges, and the state buffers (the spec's symbols). Tests, the torch constructors and
the demo iterate over it; nothing else lists the rules again.

>>> from reference import RULES
>>> rule = RULES["lamb"]
>>> state = rule.module.init(params)
>>> params, state = rule.module.step(params, grads, state, lr=1e-2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._spec import Hyper, Rule, betas, clip, dof, flag, period, real, warmup

__all__ = ["BASE_RULES", "RULES", "WRAPPERS", "Hyper", "Rule", "get"]

_LR = real("lr", 1e-3, "learning rate α (η)", sample=(1e-4, 0.3))
_EPS = real("eps", 1e-8, "ε > 0, added to denominators", lo_open=True, sample=(1e-10, 1e-6))
_WD = real("weight_decay", 0.0, "λ >= 0 (where it enters is the rule's own: see its docstring)", sample=(0.0, 0.3))
_BETAS2 = betas((0.9, 0.999), "(β1, β2): EMA coefficients of the moments", sample=((0.0, 0.99), (0.5, 0.9999)))
_AMSGRAD = flag("amsgrad", False, "keep the running max of the second moment for the denominator")
_SYNC_RATE = real(
    "sync_rate",
    0.5,
    "α in (0, 1]: how far the slow weights move toward the fast ones",
    lo_open=True,
    hi=1.0,
    sample=(0.05, 1.0),
)


def _nesterov_needs_momentum(hp: Mapping[str, Any]) -> None:
    if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
        raise ValueError(
            f"nesterov=True requires momentum > 0 and dampening = 0, got momentum={hp['momentum']!r}, "
            f"dampening={hp['dampening']!r}"
        )


def _tadam_beta1(hp: Mapping[str, Any]) -> None:
    if not 0.5 <= hp["betas"][0] < 1.0:
        raise ValueError(
            f"betas[0] must be in [0.5, 1) for TAdam (W_t's factor (2β1-1)/β1 must be >= 0), got {hp['betas'][0]!r}"
        )


def _ademamix_warmup_beta1(hp: Mapping[str, Any]) -> None:
    if hp["beta3_warmup"] is not None and hp["betas"][0] <= 0.0:
        raise ValueError(f"beta3_warmup needs betas[0] > 0 (it starts at β1's half-life), got {hp['betas'][0]!r}")


_BASE = (
    Rule(
        "lars",
        "LARS",
        "reference.lars",
        paper="arXiv:1708.03888",
        state=("v",),
        hypers=(
            _LR,
            real("momentum", 0.0, "m in [0, 1)", hi=1.0, hi_open=True, sample=(0.0, 0.99)),
            real("dampening", 0.0, "δ in [0, 1]", hi=1.0, sample=(0.0, 0.9)),
            _WD,
            flag("nesterov", False, "Nesterov momentum (needs momentum > 0 and dampening = 0)"),
            clip("(lo, hi) clamp on ‖θ‖ in the local LR; None: no clamp"),
        ),
        constraints=(_nesterov_needs_momentum,),
    ),
    Rule(
        "lamb",
        "LAMB",
        "reference.lamb",
        paper="arXiv:1904.00962",
        state=("m", "v"),
        hypers=(
            _LR,
            _BETAS2,
            _EPS,
            _WD,
            clip("(lo, hi) clamp φ on ‖θ‖ in the trust ratio; None: (0, 10)"),
        ),
    ),
    Rule(
        "ralars",
        "RaLars",
        "reference.ralars",
        paper="arXiv:1908.03265 + arXiv:1708.03888",
        state=("m", "v"),
        hypers=(
            _LR,
            _BETAS2,
            _EPS,
            _WD,
            flag("force_adaptive_momentum", False, "use the unrectified Adam direction while ρ_t <= 4"),
            clip("(lo, hi) clamp φ on ‖θ‖ in the trust ratio; None: (0, 10)"),
        ),
    ),
    Rule(
        "tadam",
        "TAdam",
        "reference.tadam",
        paper="arXiv:2003.00179",
        state=("m", "v", "W"),
        optional_state={"v_max": "amsgrad"},
        hypers=(
            _LR,
            betas((0.9, 0.999), "(β1, β2); β1 in [0.5, 1)", sample=((0.5, 0.99), (0.5, 0.9999))),
            _EPS,
            _WD,
            _AMSGRAD,
            dof("ν: degrees of freedom of the Student-t; None: numel(θ); inf: Adam"),
        ),
        constraints=(_tadam_beta1,),
    ),
    Rule(
        "adabelief",
        "AdaBelief",
        "reference.adabelief",
        paper="arXiv:2010.07468",
        state=("m", "s"),
        optional_state={"s_max": "amsgrad"},
        hypers=(_LR, _BETAS2, _EPS, _WD, _AMSGRAD),
    ),
    Rule(
        "adamp",
        "AdamP",
        "reference.adamp",
        paper="arXiv:2006.08217",
        state=("m", "v"),
        optional_state={"v_max": "amsgrad"},
        hypers=(
            _LR,
            _BETAS2,
            _EPS,
            _WD,
            _AMSGRAD,
            real("delta", 0.1, "δ > 0: cosine threshold for the projection", lo_open=True, sample=(0.01, 1.0)),
            real(
                "wd_ratio",
                0.1,
                "r in [0, 1]: weight-decay factor on projected tensors",
                hi=1.0,
                sample=(0.0, 1.0),
            ),
            flag("nesterov", False, "Nesterov direction (β1 m_t + (1 - β1) g_t)"),
        ),
    ),
    Rule(
        "adan",
        "Adan",
        "reference.adan",
        paper="arXiv:2208.06677",
        state=("m", "v", "n", "g_prev"),
        optional_state={"n_max": "amsgrad"},
        hypers=(
            _LR,
            betas(
                (0.98, 0.92, 0.99),
                "(β1, β2, β3) in the official code's convention (the paper's 1 - β)",
                sample=((0.0, 0.99), (0.0, 0.99), (0.5, 0.9999)),
            ),
            _EPS,
            _WD,
            _AMSGRAD,
        ),
    ),
    Rule(
        "ademamix",
        "AdEMAMix",
        "reference.ademamix",
        paper="arXiv:2409.03050",
        state=("m1", "m2", "nu"),
        hypers=(
            _LR,
            betas(
                (0.9, 0.999, 0.9999),
                "(β1, β2, β3): fast EMA, second moment, slow EMA",
                sample=((0.0, 0.99), (0.5, 0.9999), (0.9, 0.9999)),
            ),
            real("alpha", 5.0, "α >= 0: weight of the slow EMA in the update", sample=(0.0, 10.0)),
            _EPS,
            _WD,
            warmup("alpha_warmup", "T_α: steps of linear warm-up of α; None: none"),
            warmup("beta3_warmup", "T_β3: steps of half-life warm-up of β3 from β1; None: none"),
        ),
        constraints=(_ademamix_warmup_beta1,),
    ),
)

_WRAP = (
    Rule(
        "lookahead",
        "Lookahead",
        "reference.lookahead",
        paper="arXiv:1907.08610",
        state=("phi",),
        wrapper=True,
        hypers=(_SYNC_RATE, period("sync_period", 6, "k >= 1: fast steps between syncs", lo=1)),
    ),
    Rule(
        "scout",
        "Scout",
        "reference.scout",
        paper="holocron (no paper)",
        state=("phi",),
        wrapper=True,
        hypers=(_SYNC_RATE, period("sync_period", 6, "k >= 2: fast steps between syncs", lo=2)),
    ),
)

BASE_RULES: dict[str, Rule] = {r.name: r for r in _BASE}
WRAPPERS: dict[str, Rule] = {r.name: r for r in _WRAP}
RULES: dict[str, Rule] = {**BASE_RULES, **WRAPPERS}


def get(name: str) -> Rule:
    """The rule registered under ``name`` (case-insensitive), with a clear error listing the valid names."""
    try:
        return RULES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown rule {name!r}; valid names: {', '.join(RULES)}") from None
