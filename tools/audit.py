"""The conformance audit (``make audit``): every implementation of our rules in six peer libraries, verified step for
step against our float64 NumPy reference with ``holocron_torch.testing.verify``; writes docs/conformance.md and
docs/conformance.json (never edit those by hand).

For each (library, rule, configuration) row the verdict is computed, not written:

- ``pass``: the implementation equals our reference rule (every drawn scenario, every step, parameters and state);
- ``convention``: it does not, but equals a documented variant of it (``holocron_torch.testing.variants``: weight
  decay coupled / decoupled / proximal, bias correction off or outside, ε placement, no φ clamp, 1-d tensors
  excluded, RAdam rectification), or another configuration row of the same library explains the difference;
- ``deviation``: it equals neither: the row gives what differs (read in the peer's source, and in the official code
  where there is one), its size at step 1 and at the first step it shows, the shrunk counterexample, and the line.

The rows below are data: the peer's constructor, how its state maps onto the reference's fields, the candidates
tried in order, and (for what the source reading found) the explanation. The audit runs Hypothesis with a modest
number of scenarios (``--examples``, default 30; up to 8 steps, 1-3 tensors, 1-2 groups) so that the whole matrix
takes a few minutes on 2 cores; a deviation is then shrunk to its smallest counterexample.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import io
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.impls import import_skipping_init  # noqa: E402 (timm's __init__ imports torchvision)
from holocron_torch import optim as ours  # noqa: E402
from holocron_torch.testing import Mismatch, strategies, variants, verify, wrapped  # noqa: E402
from reference import (  # noqa: E402
    RULES,
    adabelief,
    adamp,
    adan,
    ademamix,
    lamb,
    lars,
    lookahead,
    ralars,
)

#: the audited libraries: distribution name -> import name
LIBRARIES = {
    "timm": "timm",
    "pytorch_optimizer": "pytorch_optimizer",
    "torch-optimizer": "torch_optimizer",
    "heavyball": "heavyball",
    "adabelief-pytorch": "adabelief_pytorch",
    "adamp": "adamp",
}
#: our ten rules, for the coverage table
OUR_RULES = ("lars", "lamb", "ralars", "tadam", "adabelief", "adamp", "adan", "ademamix", "lookahead", "scout")
SITE = "site-packages"


def version(dist: str) -> str:
    return importlib.metadata.version(dist)


def peer(library: str, module: str, cls: str) -> Callable[..., Any]:
    """The peer's optimizer class (timm's optimizer modules imported without timm/__init__, which needs
    torchvision)."""
    if library == "timm":
        return getattr(import_skipping_init("timm", module), cls)
    if library == "heavyball":
        utils = importlib.import_module("heavyball.utils")
        # heavyball compiles its update with torch.compile unless its own module-level switch is off (eager here)
        utils.compile_mode = utils.compile_mode_recommended_to_none = None
    return getattr(importlib.import_module(module), cls)


def quiet(cls: Callable[..., Any]) -> Callable[..., Any]:
    """adabelief-pytorch prints its settings at every construction (even with print_change_log=False)."""

    def build(*args: Any, **kw: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return cls(*args, **kw)

    return build


def hypers(rule: str, keys: tuple[str, ...], **pinned: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Valid hyperparameters of our ``rule`` (the registry's ranges), restricted to the keys the peer shares."""
    return strategies.hyperparameters(RULES[rule], **pinned).map(lambda hp: {k: hp[k] for k in keys})


def positive_decay(strategy: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return strategy.filter(lambda hp: hp.get("weight_decay", 0.0) > 0.0)


@dataclass
class Row:
    library: str
    rule: str
    configuration: str
    build: Callable[..., Any]
    hyper: st.SearchStrategy[dict[str, Any]]
    example: dict[str, Any]  # the hyperparameters of the step-1 measurement
    candidates: list[tuple[Any, str | None]]  # (reference, convention text or None for "ours as is")
    state: Mapping[str, str] | tuple[str, ...] = ()
    read_state: Callable[..., Mapping[str, Any]] | None = None
    check_grads: bool = True
    constructor: st.SearchStrategy[dict[str, Any]] | None = None
    example_constructor: dict[str, Any] = field(default_factory=dict)
    components: Mapping[str, str] | None = None
    explained_by: str | None = None  # another row's configuration that passes: the convention
    convention: str = ""  # what the explained_by row changes, for the text
    deviation: str = ""  # what the source reading found, and where (when no candidate passes)
    note: str = ""  # anything else the reader should know (e.g. p.grad written in place)
    default_dtype: torch.dtype | None = None  # torch's default dtype while the row runs (None: as it is)


# ---- the peers' state layouts -------------------------------------------------------------------------------------
ADAM_KEYS = {"m": "exp_avg", "v": "exp_avg_sq"}
ADABELIEF_KEYS = {"m": "exp_avg", "s": "exp_avg_var"}


def adan_neg_prev(key: str) -> Callable[..., Mapping[str, Any]]:
    """timm and pytorch_optimizer keep -g_{t-1} (``neg_pre_grad`` / ``previous_grad``)."""
    return lambda opt, p: {"g_prev": -opt.state[p][key]}


def heavyball_state(opt: Any, p: torch.Tensor) -> dict[str, Any]:
    """heavyball nests the state (``state[p][0]``) and keeps the fast EMA and ν bias-corrected (its betas are
    debiased each step): m1 = m̂1 (1 - β1^t), ν = ν̂ (1 - β2^t)."""
    inner = opt.state[p][0]
    group = next(g for g in opt.param_groups if any(q is p for q in g["params"]))
    t = next(float(opt.state[q][0]["step"]) for q in group["params"] if "step" in opt.state[q].get(0, {}))
    b1, b2, _ = group["betas"]
    return {
        "m1": inner["update_by_ademamix_exp_avg_fast_0"] * (1 - b1**t),
        "nu": inner["update_by_ademamix_exp_avg_sq_0"] * (1 - b2**t),
        "m2": inner["update_by_ademamix_exp_avg_slow_0"],
    }


def slow_weights(key: str, where: str = "self") -> Callable[..., Mapping[str, Any]]:
    """A Lookahead's slow weights φ, where the peer keeps them (absent before it creates them: not compared)."""

    def read(opt: Any, p: torch.Tensor) -> Mapping[str, Any]:
        holder = opt if where == "self" else getattr(opt, where)
        value = holder.state.get(p, {}).get(key)
        return {} if value is None else {"phi": value}

    return read


def official_beta3_t(t: int, beta1: float, beta3: float, beta3_warmup: int | None) -> float:
    """β3_t as apple/ml-ademamix computes it: linear in the half-life ln 0.5 / ln(β + 1e-8) - 1 (its ε)."""
    if beta3_warmup is None or t >= beta3_warmup:
        return beta3

    def half_life(beta: float) -> float:
        return math.log(0.5) / math.log(beta + 1e-8) - 1

    a = t / beta3_warmup
    return math.pow(0.5, 1 / ((1 - a) * half_life(beta1) + a * half_life(beta3) + 1))


# ---- the rows -------------------------------------------------------------------------------------------------------
def rows() -> list[Row]:
    T, PO, TO, HB, AB, AP = "timm", "pytorch_optimizer", "torch-optimizer", "heavyball", "adabelief-pytorch", "adamp"
    ex = {"lr": 1e-2, "weight_decay": 1e-2}
    out: list[Row] = []

    # LARS -----------------------------------------------------------------------------------------------------------
    lars_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    lars_ex = {**ex, "momentum": 0.9, "dampening": 0.0, "nesterov": False}
    lars_h = hypers("lars", lars_keys, scale_clip=None)
    lars_state = lambda hp: {"v": "momentum_buffer"} if hp["momentum"] > 0 else {}  # noqa: E731 (none without momentum)
    Lars = peer(T, "timm.optim.lars", "Lars")
    out.append(
        Row(
            T,
            "lars",
            "defaults (trust_coeff=0.001, eps=1e-8, always_adapt=False)",
            Lars,
            lars_h,
            lars_ex,
            [(lars, None)],
            state=lars_state,
            explained_by="trust_coeff=1, eps=0, always_adapt=True",
            note="read in the source, not necessarily drawn here: where ‖g‖ = 0 (and ‖θ‖ > 0) timm sets the local "
            "LR to 1 (apex LARC's guard, timm/optim/lars.py:183-187), where the paper's formula, and ours, gives "
            "η‖θ‖ / (λ‖θ‖) = η/λ: an edge case (a tensor whose gradient is exactly zero)",
            convention="the trust coefficient η multiplies the local LR (ours absorbs it into α, the paper's "
            "α = η × the global LR); ε is added to the local LR's denominator; the local LR is skipped for a group "
            "with λ = 0 (apex LARC's way of excluding biases and norms)",
        )
    )
    out.append(
        Row(
            T,
            "lars",
            "trust_coeff=1, eps=0, always_adapt=True",
            lambda g: Lars(g, trust_coeff=1.0, eps=0.0, always_adapt=True),
            lars_h,
            lars_ex,
            [(lars, None)],
            state=lars_state,
        )
    )
    PLars = peer(PO, "pytorch_optimizer", "LARS")
    sgd_1d = variants.fixed(variants.sgd, weight_decay=0.0)
    out.append(
        Row(
            PO,
            "lars",
            "defaults (trust_coefficient=0.001)",
            PLars,
            lars_h,
            lars_ex,
            [(lars, None)],
            state=lars_state,
            check_grads=False,
            explained_by="trust_coefficient=1",
            convention="the trust coefficient η multiplies the local LR (ours absorbs it into α)",
            note="writes the decayed, scaled direction into p.grad in place (verified with check_grads=False)",
        )
    )
    out.append(
        Row(
            PO,
            "lars",
            "trust_coefficient=1",
            lambda g: PLars(g, trust_coefficient=1.0),
            lars_h,
            {**lars_ex, "dampening": 0.1},
            [
                (lars, None),
                (
                    variants.exclude_1d(lars, sgd_1d),
                    "tensors with <= 1 dimension (biases, norms) get neither the local LR nor weight decay: plain SGD",
                ),
            ],
            state=lars_state,
            check_grads=False,
            deviation="the momentum buffer starts at 0 and takes (1 - δ) of the first direction, v_1 = (1 - δ) γ_1 "
            "d_1, where torch.optim.SGD and the LARS reference code (and timm, torch-optimizer) start v_1 = γ_1 d_1: "
            f"the first steps are scaled by (1 - δ) when dampening δ > 0 ({SITE}/pytorch_optimizer/optimizer/lars.py:"
            "82 zeros, :115-116 and :153 the update)",
            note="writes the decayed, scaled direction into p.grad in place (verified with check_grads=False)",
        )
    )
    TLars = peer(TO, "torch_optimizer", "LARS")
    out.append(
        Row(
            TO,
            "lars",
            "defaults (trust_coefficient=0.01, eps=1e-8)",
            TLars,
            lars_h,
            lars_ex,
            [(lars, None)],
            state=lars_state,
            explained_by="trust_coefficient=1, eps=0 (λ > 0)",
            convention="the trust coefficient η multiplies the local LR (ours absorbs it into α); ε is added to the "
            "local LR's denominator; a group with λ = 0 gets no local LR at all",
        )
    )
    out.append(
        Row(
            TO,
            "lars",
            "trust_coefficient=1, eps=0 (λ > 0)",
            lambda g: TLars(g, trust_coefficient=1.0, eps=0.0),
            positive_decay(lars_h),
            lars_ex,
            [(lars, None)],
            state=lars_state,
            deviation="where ‖θ‖ = 0 or ‖g‖ = 0 the whole LARS block is skipped, weight decay included: "
            "d = g instead of g + λθ (a tensor whose gradient is exactly 0 is not decayed; apex LARC and timm "
            f"decay it with γ = 1) ({SITE}/torch_optimizer/lars.py:141-148)",
        )
    )

    # LAMB -----------------------------------------------------------------------------------------------------------
    lamb_keys = ("lr", "betas", "eps", "weight_decay")
    lamb_h = hypers("lamb", lamb_keys, scale_clip=None)
    lamb_ex = {**ex, "betas": (0.9, 0.999), "eps": 1e-6}
    Lamb = peer(T, "timm.optim.lamb", "Lamb")
    out.append(
        Row(
            T,
            "lamb",
            "defaults (max_grad_norm=1, always_adapt=False)",
            Lamb,
            lamb_h,
            lamb_ex,
            [(lamb, None)],
            state=ADAM_KEYS,
            explained_by="max_grad_norm=None, always_adapt=True",
            convention="the gradients are first divided by max(1, global ‖g‖) (NVIDIA's LAMB clips the global "
            "gradient norm to 1; not in the paper); no φ clamp on ‖θ‖ (ours: φ into (0, 10)); the trust ratio is "
            "skipped for a group with λ = 0",
        )
    )
    out.append(
        Row(
            T,
            "lamb",
            "max_grad_norm=None, always_adapt=True",
            lambda g: Lamb(g, max_grad_norm=None, always_adapt=True),
            lamb_h,
            lamb_ex,
            [(lamb, None), (variants.no_clip(lamb), "no φ clamp: τ = ‖θ‖ / ‖u‖")],
            state=ADAM_KEYS,
        )
    )
    PLamb = peer(PO, "pytorch_optimizer", "Lamb")
    po_lamb = variants.decay(variants.bias_correction_outside(variants.trust_eps(lamb), beta2=None), "decoupled_first")
    out.append(
        Row(
            PO,
            "lamb",
            "defaults (weight_decouple=True)",
            PLamb,
            lamb_h,
            lamb_ex,
            [
                (lamb, None),
                (
                    po_lamb,
                    "decoupled decay applied first (the trust ratio sees (1 - αλ)θ); no bias "
                    "correction of v; m's 1 / (1 - β1^t) applied outside the trust ratio (so it no longer cancels: the "
                    "first step is 1 / (1 - β1) = 10× the paper's at β1 = 0.9); ε added to ‖u‖",
                ),
            ],
            state=ADAM_KEYS,
        )
    )
    po_lamb_l2 = variants.bias_correction_outside(variants.trust_eps(lamb), beta2=None)
    out.append(
        Row(
            PO,
            "lamb",
            "weight_decouple=False",
            lambda g: PLamb(g, weight_decouple=False),
            lamb_h,
            lamb_ex,
            [
                (lamb, None),
                (
                    po_lamb_l2,
                    "no bias correction of v; m's 1 / (1 - β1^t) applied outside the trust ratio; ε added to ‖u‖",
                ),
            ],
            state=ADAM_KEYS,
        )
    )
    TLamb = peer(TO, "torch_optimizer", "Lamb")
    out.append(
        Row(
            TO,
            "lamb",
            "defaults (debias=False)",
            TLamb,
            lamb_h,
            lamb_ex,
            [(lamb, None), (variants.no_bias_correction(lamb), "no bias correction (the paper's v3 has none)")],
            state=ADAM_KEYS,
        )
    )
    out.append(
        Row(
            TO,
            "lamb",
            "debias=True",
            lambda g: TLamb(g, debias=True),
            lamb_h,
            lamb_ex,
            [
                (lamb, None),
                (
                    variants.bias_correction_outside(lamb),
                    "bias correction √(1 - β2^t) / (1 - β1^t) applied to the step size, outside the trust ratio",
                ),
            ],
            state=ADAM_KEYS,
        )
    )

    # RaLars: RAdam's rectifier with a layer-wise trust ratio --------------------------------------------------------
    ralars_h = hypers("ralars", lamb_keys, scale_clip=None, force_adaptive_momentum=False)
    out.append(
        Row(
            PO,
            "ralars",
            "Lamb(rectify=True) (RAdam + trust ratio)",
            lambda g: PLamb(g, rectify=True),
            ralars_h,
            lamb_ex,
            [(ralars, None), (variants.decay(ralars, "decoupled_first"), "decoupled decay applied first")],
            state=ADAM_KEYS,
            deviation="with rectify=True the trust ratio's denominator is the norm of the would-be new parameters, "
            "‖θ - α_t m_t / (√v_t + ε)‖, not of the update: update = p.clone(); update.addcdiv_(...) then "
            "p_norm = ‖update‖, so τ ≈ ‖θ‖/‖θ‖ ≈ 1 and the layer-wise adaptation is lost (RAdam with τ ≈ 1); "
            "below ρ_t = 5 it makes no step at all (degenerated_to_sgd=False); and with weight_decouple=False the "
            f"decay is silently dropped ({SITE}/pytorch_optimizer/optimizer/lamb.py:245-265)",
        )
    )

    # AdaBelief ------------------------------------------------------------------------------------------------------
    ab_keys = ("lr", "betas", "eps", "weight_decay")
    ab_h = hypers("adabelief", ab_keys, amsgrad=False)
    ab_ams = hypers("adabelief", (*ab_keys, "amsgrad"), amsgrad=True)
    ab_ex = {**ex, "betas": (0.9, 0.999), "eps": 1e-8}
    rect = variants.decay(variants.rectified(adabelief), "decoupled")
    rect_text = "decoupled decay (AdamW-style); RAdam's rectification, SGD with momentum while ρ_t < 5"
    TAB = peer(T, "timm.optim.adabelief", "AdaBelief")
    out.append(
        Row(
            T,
            "adabelief",
            "defaults (decoupled_decay=True, rectify=True)",
            TAB,
            ab_h,
            ab_ex,
            [(adabelief, None), (rect, rect_text)],
            state=ADABELIEF_KEYS,
        )
    )
    out.append(
        Row(
            T,
            "adabelief",
            "decoupled_decay=False, rectify=False",
            lambda g: TAB(g, decoupled_decay=False, rectify=False),
            ab_h,
            ab_ex,
            [(adabelief, None)],
            state=ADABELIEF_KEYS,
        )
    )
    out.append(
        Row(
            T,
            "adabelief",
            "decoupled_decay=False, rectify=False, amsgrad=True",
            lambda g: TAB(g, decoupled_decay=False, rectify=False),
            ab_ams,
            ab_ex,
            [(adabelief, None)],
            state={**ADABELIEF_KEYS, "s_max": "max_exp_avg_var"},
        )
    )
    PAB = peer(PO, "pytorch_optimizer", "AdaBelief")
    out.append(
        Row(
            PO,
            "adabelief",
            "defaults (weight_decouple=True, rectify=False)",
            PAB,
            ab_h,
            ab_ex,
            [(adabelief, None), (variants.decay(adabelief, "decoupled"), "decoupled decay (AdamW-style)")],
            state=ADABELIEF_KEYS,
        )
    )
    out.append(
        Row(
            PO,
            "adabelief",
            "weight_decouple=False",
            lambda g: PAB(g, weight_decouple=False),
            ab_h,
            ab_ex,
            [(adabelief, None)],
            state=ADABELIEF_KEYS,
            check_grads=False,
            note="adds λθ into p.grad in place (verified with check_grads=False)",
        )
    )
    out.append(
        Row(
            PO,
            "adabelief",
            "rectify=True",
            lambda g: PAB(g, rectify=True),
            ab_h,
            ab_ex,
            [(adabelief, None), (rect, rect_text)],
            state=ADABELIEF_KEYS,
        )
    )
    TOAB = peer(TO, "torch_optimizer", "AdaBelief")
    out.append(
        Row(
            TO,
            "adabelief",
            "defaults (weight_decouple=False, rectify=False)",
            TOAB,
            ab_h,
            ab_ex,
            [(adabelief, None)],
            state=ADABELIEF_KEYS,
            check_grads=False,
            note="adds λθ into p.grad in place (verified with check_grads=False)",
        )
    )
    out.append(
        Row(
            TO,
            "adabelief",
            "amsgrad=True",
            lambda g: TOAB(g, amsgrad=True),
            ab_ams,
            ab_ex,
            [(adabelief, None)],
            state={**ADABELIEF_KEYS, "s_max": "max_exp_avg_var"},
            check_grads=False,
            deviation="with amsgrad, ε is added to the running maximum in place every step (max_exp_avg_var.add_"
            "(eps)) and not to s_t: the maximum accumulates t·ε (s^max_t >= s^max_{t-1} + ε), where the official "
            "code (and the paper's s_t + ε) keeps max(s^max, s_t + ε) "
            f"({SITE}/torch_optimizer/adabelief.py:173-180)",
        )
    )
    out.append(
        Row(
            TO,
            "adabelief",
            "rectify=True",
            lambda g: TOAB(g, rectify=True),
            ab_h,
            ab_ex,
            [(adabelief, None), (variants.rectified(adabelief, threshold=4.0), "RAdam's rectification")],
            state=ADABELIEF_KEYS,
            check_grads=False,
            deviation="while ρ_t <= 4 (the first steps) the SGD branch steps by α m_t, without the 1 / (1 - β1^t) "
            "that the official code (degenerated_to_sgd) applies: 1 - β1 = 0.1× its step at step 1 with β1 = 0.9; "
            "it also rectifies from ρ_t > 4 where the official code waits for ρ_t >= 5, and keeps ε outside "
            "√(1 - β2^t) (ours' placement, not the official rectified branch's); it calls the deprecated "
            "add_(scalar, tensor) / addcdiv_(scalar, t1, t2) signatures (a UserWarning on torch 2.13) "
            f"({SITE}/torch_optimizer/adabelief.py:198-218)",
        )
    )
    OAB = quiet(peer(AB, "adabelief_pytorch", "AdaBelief"))
    out.append(
        Row(
            AB,
            "adabelief",
            "defaults (weight_decouple=True, rectify=True)",
            lambda g: OAB(g, print_change_log=False),
            ab_h,
            ab_ex,
            [(adabelief, None), (rect, rect_text)],
            state=ADABELIEF_KEYS,
        )
    )
    out.append(
        Row(
            AB,
            "adabelief",
            "weight_decouple=False, rectify=False",
            lambda g: OAB(g, weight_decouple=False, rectify=False, print_change_log=False),
            ab_h,
            ab_ex,
            [(adabelief, None)],
            state=ADABELIEF_KEYS,
            check_grads=False,
            note="adds λθ into p.grad in place (verified with check_grads=False)",
        )
    )
    out.append(
        Row(
            AB,
            "adabelief",
            "weight_decouple=False, rectify=False, amsgrad=True",
            lambda g: OAB(g, weight_decouple=False, rectify=False, print_change_log=False),
            ab_ams,
            ab_ex,
            [(adabelief, None)],
            state={**ADABELIEF_KEYS, "s_max": "max_exp_avg_var"},
            check_grads=False,
            note="adds λθ into p.grad in place (verified with check_grads=False)",
        )
    )

    # AdamP ----------------------------------------------------------------------------------------------------------
    ap_keys = ("lr", "betas", "eps", "weight_decay", "delta", "wd_ratio", "nesterov")
    ap_h = hypers("adamp", ap_keys, amsgrad=False)
    ap_ex = {**ex, "betas": (0.9, 0.999), "eps": 1e-8, "delta": 0.1, "wd_ratio": 0.1, "nesterov": False}
    for lib, module, cls in (
        (T, "timm.optim.adamp", "AdamP"),
        (PO, "pytorch_optimizer", "AdamP"),
        (TO, "torch_optimizer", "AdamP"),
        (AP, "adamp", "AdamP"),
    ):
        out.append(
            Row(
                lib,
                "adamp",
                "defaults",
                peer(lib, module, cls),
                ap_h,
                ap_ex,
                [
                    (adamp, None),
                    (
                        variants.eps_hat(adamp),
                        "ε scaled by √(1 - β2^t): the denominator is (√v_t + ε) / √(1 - β2^t) (Adam's ε̂ form)",
                    ),
                ],
                state=ADAM_KEYS,
                deviation=""
                if lib != PO
                else "the denominator is (√v_t + ε) / √(1 - β2^t), ε scaled by "
                "√(1 - β2^t) (Adam's ε̂ form), where the official clovaai/AdamP code divides first and adds ε "
                "after, √v_t / √(1 - β2^t) + ε; the projection's ε is the unscaled one, so no single ε reproduces "
                f"it ({SITE}/pytorch_optimizer/optimizer/adamp.py:403-406, :489)",
            )
        )

    # Adan -----------------------------------------------------------------------------------------------------------
    adan_keys = ("lr", "betas", "eps", "weight_decay")
    adan_h = hypers("adan", adan_keys, amsgrad=False)
    adan_ex = {**ex, "betas": (0.98, 0.92, 0.99), "eps": 1e-8}
    adan_state = {"m": "exp_avg", "v": "exp_avg_diff", "n": "exp_avg_sq"}
    decoupled_adan = (variants.decay(adan, "decoupled"), "decoupled decay θ(1 - αλ) instead of the proximal step")
    TAdan = peer(T, "timm.optim.adan", "Adan")
    out.append(
        Row(
            T,
            "adan",
            "defaults (no_prox=False)",
            TAdan,
            adan_h,
            adan_ex,
            [(adan, None)],
            state=adan_state,
            read_state=adan_neg_prev("neg_pre_grad"),
        )
    )
    out.append(
        Row(
            T,
            "adan",
            "no_prox=True",
            lambda g: TAdan(g, no_prox=True),
            adan_h,
            adan_ex,
            [(adan, None), decoupled_adan],
            state=adan_state,
            read_state=adan_neg_prev("neg_pre_grad"),
        )
    )
    PAdan = peer(PO, "pytorch_optimizer", "Adan")
    out.append(
        Row(
            PO,
            "adan",
            "defaults (weight_decouple=False)",
            PAdan,
            adan_h,
            adan_ex,
            [(adan, None)],
            state=adan_state,
            read_state=adan_neg_prev("previous_grad"),
        )
    )
    out.append(
        Row(
            PO,
            "adan",
            "weight_decouple=True",
            lambda g: PAdan(g, weight_decouple=True),
            adan_h,
            adan_ex,
            [(adan, None), decoupled_adan],
            state=adan_state,
            read_state=adan_neg_prev("previous_grad"),
        )
    )

    # AdEMAMix -------------------------------------------------------------------------------------------------------
    am_keys = ("lr", "betas", "alpha", "eps", "weight_decay")
    am_h = hypers("ademamix", am_keys, alpha_warmup=None, beta3_warmup=None)
    am_ex = {**ex, "betas": (0.9, 0.999, 0.9999), "alpha": 5.0, "eps": 1e-8}
    am_state = {"m1": "exp_avg", "nu": "exp_avg_sq", "m2": "exp_avg_slow"}
    PAM = peer(PO, "pytorch_optimizer", "AdEMAMix")
    out.append(
        Row(
            PO,
            "ademamix",
            "defaults (weight_decouple=False)",
            PAM,
            am_h,
            am_ex,
            [
                (ademamix, None),
                (
                    variants.decay(ademamix, "coupled"),
                    "coupled L2 decay (λθ added to g, so to all three EMAs) instead of the paper's decoupled decay",
                ),
            ],
            state=am_state,
            check_grads=False,
            note="adds λθ into p.grad in place (verified with check_grads=False)",
        )
    )
    out.append(
        Row(
            PO,
            "ademamix",
            "weight_decouple=True",
            lambda g: PAM(g, weight_decouple=True),
            am_h,
            am_ex,
            [(ademamix, None)],
            state=am_state,
        )
    )
    warm_h = (
        st.tuples(am_h, st.sampled_from([1, 3, 5, 100]))
        .map(lambda x: {**x[0], "alpha_warmup": x[1], "beta3_warmup": x[1]})
        .filter(lambda hp: 0 < hp["betas"][0] <= hp["betas"][2])
    )  # β3 >= β1, as the paper uses it

    def po_warm(groups: list[dict[str, Any]]) -> Any:
        return PAM([{**g, "t_alpha_beta3": g["alpha_warmup"]} for g in groups], weight_decouple=True)

    out.append(
        Row(
            PO,
            "ademamix",
            "weight_decouple=True, t_alpha_beta3=T (= both warm-ups)",
            po_warm,
            warm_h,
            {**am_ex, "alpha_warmup": 5, "beta3_warmup": 5},
            [(ademamix, None)],
            state=am_state,
            note="drawn with β3 >= β1 (the paper's use); with β3 < β1 its schedule is clamped, β3_t = "
            "min(β3(t), β3) = β3 from step 1, where ours and the official code interpolate from β1 "
            f"({SITE}/pytorch_optimizer/optimizer/ademamix.py:118-125)",
        )
    )
    HAM = peer(HB, "heavyball", "AdEMAMix")

    def hb(groups: list[dict[str, Any]], **kw: Any) -> Any:
        return HAM(groups, compile_step=False, storage_dtype="float64", **kw)

    official_hl = variants.eps_clamp(
        variants.swap(ademamix, "beta3_t", official_beta3_t, "official β3_t"), "nu", beta=1
    )
    official_hl_text = (
        "ε as a floor on the root, max(√ν̂, ε); and the β3 warm-up of the official apple/ml-ademamix code, whose "
        "half-life is ln 0.5 / ln(β + 1e-8) - 1 (the 1e-8 moves β3_t by ~1e-8 / (1 - β) relative during the "
        "warm-up; our reference has the paper's exact formula)"
    )
    hb_clamp = (variants.eps_clamp(ademamix, "nu", beta=1), "ε as a floor on the root: max(√ν̂, ε), not √ν̂ + ε")
    hb_note = (
        "heavyball's torch.compile is switched off through its own heavyball.utils.compile_mode = None (eager: the "
        "same math); state kept in float64 (its default storage is float32); it frees p.grad after the step "
        "(verified with check_grads=False); its fast EMA and ν are stored bias-corrected (debiased betas) and read "
        "back as m1 = m̂1 (1 - β1^t), ν = ν̂ (1 - β2^t)"
    )
    out.append(
        Row(
            HB,
            "ademamix",
            "defaults, eager (compile off), storage_dtype=float64",
            hb,
            am_h,
            am_ex,
            [(ademamix, None), hb_clamp],
            read_state=heavyball_state,
            check_grads=False,
            note=hb_note,
            deviation="the learning rate is rounded to float32 whatever the parameters' dtype: its warm-up factor "
            "base_lr * step / step.clamp(min=warmup_steps + 1), with step an int64 tensor, takes torch's default "
            "dtype (float32), so a float64 run steps with float32(α) (a relative error up to 6e-8 in every step; "
            f"with torch's default dtype set to float64 it is the row below) ({SITE}/heavyball/chainable.py:2594)",
        )
    )
    out.append(
        Row(
            HB,
            "ademamix",
            "eager, storage_dtype=float64, torch default dtype float64",
            hb,
            am_h,
            am_ex,
            [(ademamix, None), hb_clamp],
            read_state=heavyball_state,
            check_grads=False,
            note=hb_note,
            default_dtype=torch.float64,
        )
    )
    out.append(
        Row(
            HB,
            "ademamix",
            "beta3_warmup=alpha_warmup=T, eager, float64 (default dtype too)",
            hb,
            warm_h,
            {**am_ex, "alpha_warmup": 5, "beta3_warmup": 5},
            [(ademamix, None), hb_clamp, (official_hl, official_hl_text)],
            read_state=heavyball_state,
            check_grads=False,
            default_dtype=torch.float64,
            deviation="the β3 warm-up's half-life is ln 0.5 / ln(β + 1e-8) - 1, as in the official apple/ml-ademamix "
            f"code ({SITE}/heavyball/utils.py:310-311); unexplained if the official-code variant fails",
            note="eager (heavyball.utils.compile_mode = None), state in float64, drawn with β3 >= β1",
        )
    )

    # Lookahead (around our own AdaBelief, verified separately) ------------------------------------------------------
    la_ctor = st.fixed_dictionaries({"sync_rate": st.floats(0.05, 1.0), "sync_period": st.integers(1, 5)})
    la_ref = wrapped(lookahead, adabelief, ("sync_rate", "sync_period"))
    la_ex = {"sync_rate": 0.5, "sync_period": 3}
    TLA, PLA, TOLA = (
        peer(T, "timm.optim.lookahead", "Lookahead"),
        peer(PO, "pytorch_optimizer", "Lookahead"),
        peer(TO, "torch_optimizer", "Lookahead"),
    )
    out.append(
        Row(
            T,
            "lookahead",
            "defaults, around holocron-torch's AdaBelief",
            lambda g, sync_rate, sync_period: TLA(ours.AdaBelief(g), alpha=sync_rate, k=sync_period),
            ab_h,
            ab_ex,
            [(la_ref, None)],
            read_state=slow_weights("lookahead_slow_buff", "_base_optimizer"),
            constructor=la_ctor,
            example_constructor=la_ex,
            components={"base": "_base_optimizer"},
            deviation="the slow weights are created lazily at the first sync, as a copy of the fast weights then "
            "(φ = θ_k), so the first sync is a no-op; the paper (Algorithm 1) and the authors' code start "
            f"φ_0 = θ_0, pulling θ_k back towards θ_0 ({SITE}/timm/optim/lookahead.py:45-47)",
        )
    )
    out.append(
        Row(
            PO,
            "lookahead",
            "defaults (pullback_momentum='none'), around holocron-torch's AdaBelief",
            lambda g, sync_rate, sync_period: PLA(ours.AdaBelief(g), alpha=sync_rate, k=sync_period),
            ab_h,
            ab_ex,
            [(la_ref, None)],
            read_state=slow_weights("slow_params"),
            constructor=la_ctor,
            example_constructor=la_ex,
            components={"base": "optimizer"},
        )
    )
    out.append(
        Row(
            TO,
            "lookahead",
            "defaults, around holocron-torch's AdaBelief",
            lambda g, sync_rate, sync_period: TOLA(ours.AdaBelief(g), alpha=sync_rate, k=sync_period),
            ab_h,
            ab_ex,
            [(la_ref, None)],
            read_state=slow_weights("slow_param"),
            constructor=la_ctor,
            example_constructor=la_ex,
            components={"base": "optimizer"},
            deviation="the sync runs when the counter is 0 before it is incremented, i.e. after steps 1, k + 1, "
            "2k + 1, ...; the slow weights are created at that first sync from θ_1, so it is a no-op: φ starts at "
            "θ_1 and every later sync comes one step late relative to the paper's steps k, 2k, ... "
            f"({SITE}/torch_optimizer/lookahead.py:60-66, :76-79)",
        )
    )
    return out


# ---- running one row --------------------------------------------------------------------------------------------
def _profile(examples: int, shrink: bool) -> str:
    name = f"audit-{examples}-{'shrink' if shrink else 'screen'}"
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    settings.register_profile(
        name,
        max_examples=examples,
        phases=phases,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )
    return name


def _check(row: Row, reference: Any, examples: int, shrink: bool) -> Mismatch | None:
    kwargs: dict[str, Any] = dict(
        hyperparameters=row.hyper,
        state=row.state,
        read_state=row.read_state,
        check_grads=row.check_grads,
        compare_step=False,  # the peers keep the step in the group, in the state, or nowhere: not the point here
        constructor=row.constructor,
        components=row.components,
        max_steps=8,
    )
    previous, dtype = settings.get_current_profile_name(), torch.get_default_dtype()
    settings.load_profile(_profile(examples, shrink))
    torch.set_default_dtype(row.default_dtype or dtype)
    try:
        verify(row.build, reference, **kwargs)
    except Mismatch as e:
        return e
    finally:
        settings.load_profile(previous)
        torch.set_default_dtype(dtype)
    return None


def divergence(row: Row, reference: Any, steps: int = 12) -> tuple[float, int | None, float]:
    """(size at step 1, first step that differs, size there): ‖θ_peer - θ_ref‖ / ‖θ_ref - θ_0‖ (worst tensor), on a
    fixed problem (a 4×3 matrix and a 6-vector, standard normal values and gradients) at ``row.example``."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(row.default_dtype or dtype)
    try:
        return _divergence(row, reference, steps)
    finally:
        torch.set_default_dtype(dtype)


def _divergence(row: Row, reference: Any, steps: int) -> tuple[float, int | None, float]:
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((4, 3)), rng.standard_normal(6)]
    tensors = [torch.tensor(p, requires_grad=True) for p in init]
    opt = row.build([{"params": tensors, **row.example}], **row.example_constructor)
    hp = {**row.example_constructor, **row.example}
    ref_p, ref_s = [p.copy() for p in init], reference.init([p.copy() for p in init], **hp)
    first, first_step, at_first = math.nan, None, math.nan
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(p.shape) for p in init]
        for p, g in zip(tensors, grads):
            p.grad = torch.tensor(g)
        opt.step()
        ref_p, ref_s = reference.step(ref_p, grads, ref_s, **hp)
        size = max(
            float(np.linalg.norm(p.detach().numpy() - r) / max(np.linalg.norm(r - p0), 1e-300))
            for p, r, p0 in zip(tensors, ref_p, init)
        )
        if t == 1:
            first = size
        if first_step is None and size > 1e-9:
            first_step, at_first = t, size
    return first, first_step, at_first


def _short(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def audit_row(row: Row, examples: int, done: dict[tuple[str, str], tuple[str, str]]) -> dict[str, Any]:
    start = time.perf_counter()
    result: dict[str, Any] = {
        "library": row.library,
        "version": version(row.library),
        "rule": row.rule,
        "configuration": row.configuration,
    }
    failures: list[tuple[Any, Mismatch]] = []
    for reference, text in row.candidates:
        error = _check(row, reference, examples, shrink=False)
        if error is None:
            if text is None:
                result |= {"verdict": "pass", "detail": "equals our reference on every drawn scenario"}
            else:
                result |= {"verdict": "convention", "detail": f"{text}; passes as variant {reference.name}"}
            break
        failures.append((reference, error))
    else:
        explained = done.get((row.library, row.explained_by or ""))
        if row.explained_by and explained is not None:
            size1, at, size = divergence(row, row.candidates[0][0])
            how = (
                "passes as configured"
                if explained[0] in ("pass", "convention")
                else "otherwise behaves as configured (a deviation there: see that row)"
            )
            result |= {
                "verdict": "convention" if explained[0] in ("pass", "convention") else "deviation",
                "detail": f"{row.convention}; {how} in the row '{row.explained_by}' "
                f"(difference from our rule at these defaults: {size1:.3g} at step 1, relative to the step)",
            }
        else:
            reference = failures[-1][0]  # the closest candidate: the last, most specific one
            shrunk = _check(row, reference, examples, shrink=True) or failures[-1][1]
            try:
                size1, at, size = divergence(row, reference)
                sizes = (
                    f"size at step 1: {size1:.3g} (‖θ_peer - θ_ref‖ / ‖θ_ref - θ_0‖, {row.example} "
                    + (f"{row.example_constructor}" if row.example_constructor else "")
                    + (f"); first visible at step {at}: {size:.3g}" if at is not None else "); no difference there")
                )
            except Exception as e:  # the peer raises on the fixed problem too
                sizes = f"size: the optimizer raised {type(e).__name__}: {e}"
            what = row.deviation or "UNEXPLAINED: no candidate matches and the source reading has no finding yet"
            against = "our rule" if len(row.candidates) == 1 else f"the closest variant, {reference.name}"
            result |= {
                "verdict": "deviation",
                "detail": f"{what}. Against {against}: {sizes}. Shrunk counterexample: {_short(str(shrunk))}",
            }
    if row.note:
        result["detail"] += f". Note: {row.note}"
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


# ---- the report -------------------------------------------------------------------------------------------------
def coverage(results: list[dict[str, Any]]) -> list[str]:
    have = {(r["library"], r["rule"]) for r in results}
    lines = ["| library | version | " + " | ".join(OUR_RULES) + " |", "|---|---|" + "---|" * len(OUR_RULES)]
    for lib in LIBRARIES:
        cells = ["✓" if (lib, rule) in have else "—" for rule in OUR_RULES]
        lines.append(f"| {lib} | {version(lib)} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: list[dict[str, Any]], seconds: float, examples: int) -> str:
    counts = {v: sum(r["verdict"] == v for r in results) for v in ("pass", "convention", "deviation")}
    lines = [
        "# Conformance of the peers' implementations of our rules",
        "",
        "Written by `make audit` (tools/audit.py); do not edit by hand. Each row is one (library, rule, "
        "configuration), verified step for step against our float64 NumPy reference (reference/) with "
        "`holocron_torch.testing.verify`: parameters and every state buffer, after every step, in float64, on "
        f"{examples} drawn scenarios per candidate (1-3 tensors of shapes 0-d to 4-d, 1-8 steps, 1-2 param groups, "
        "hyperparameters from our registry's ranges), tolerance 1e-10 relative.",
        "",
        "- **pass**: equals our reference rule.",
        "- **convention**: a documented difference; it equals the named variant of our rule "
        "(`holocron_torch.testing.variants`) or passes as configured in the named row.",
        "- **deviation**: a departure from the paper / the official code: what, its size at step 1 "
        "(‖θ_peer - θ_ref‖ / ‖θ_ref - θ_0‖ on a fixed 4×3 + 6 problem), the shrunk counterexample, the source line "
        "(paths under site-packages of the audited versions).",
        "",
        f"{len(results)} rows: {counts['pass']} pass, {counts['convention']} convention, {counts['deviation']} "
        f"deviation; the audit took {seconds:.0f} s.",
        "",
        "Which of our ten rules each library implements (— none; TAdam and Scout have no implementation in any of "
        "them):",
        "",
        *coverage(results),
        "",
        "| library | version | rule | configuration | verdict | detail |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        detail = r["detail"].replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {r['library']} | {r['version']} | {r['rule']} | {r['configuration']} | **{r['verdict']}** | {detail} |"
        )
    lines += [
        "",
        "How the peers were installed: `make audit` installs them with `--no-deps` next to this torch (2.13.0, "
        "checked after the install): timm's package `__init__` imports torchvision, so its optimizer modules are "
        "imported on their own; heavyball runs eager (its `heavyball.utils.compile_mode = None`), with its state in "
        "float64. Wrappers (Lookahead) are verified around holocron-torch's AdaBelief, itself verified against the "
        "reference by the test suite.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=30, help="scenarios per candidate (default 30)")
    parser.add_argument("--only", default="", help="only rows whose library or rule contains this text")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where conformance.md/.json go (default docs/)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    done: dict[tuple[str, str], tuple[str, str]] = {}
    selected = [r for r in rows() if args.only in r.library or args.only in r.rule]
    # rows that explain others run first
    order = sorted(selected, key=lambda r: r.explained_by is not None)
    by_id: dict[int, dict[str, Any]] = {}
    for row in order:
        result = audit_row(row, args.examples, done)
        done[(row.library, row.configuration)] = (result["verdict"], result["detail"])
        by_id[id(row)] = result
        print(
            f"{result['seconds']:6.1f}s  {row.library:<18} {row.rule:<10} {result['verdict']:<10} {row.configuration}",
            flush=True,
        )
    results = [by_id[id(r)] for r in selected]
    seconds = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ("library", "version", "rule", "configuration", "verdict", "detail")
    (out / "conformance.json").write_text(
        json.dumps([{k: r[k] for k in keys} for r in results], indent=1, ensure_ascii=False) + "\n"
    )
    (out / "conformance.md").write_text(markdown(results, seconds, args.examples))
    print(f"{len(results)} rows in {seconds:.0f} s: {out / 'conformance.md'}, {out / 'conformance.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
