r"""Variants of a reference rule without retyping it: the common conventions in which implementations of one rule
differ, each composed on top of the rule's own ``init``/``step`` (reference/ stays the readable math of each rule).

Each function takes a rule (a module or object with ``init``/``step``) and returns another, so they stack::

    from reference import adabelief, lamb
    from holocron_torch.testing import variants

    decoupled = variants.decay(adabelief, "decoupled")             # AdamW-style: θ ← θ - α λ θ_{t-1}
    plain = variants.no_bias_correction(adabelief)                  # m̂ = m, ŝ = s
    root = variants.eps_inside_root(adabelief, "s", beta=1)         # m̂ / √(ŝ + ε)
    lamb_unclamped = variants.no_clip(lamb)                         # τ = ‖θ‖ / ‖u‖, no φ clamp
    lamb_1d = variants.exclude_1d(lamb, variants.fixed(lamb, weight_decay=0.0))  # biases, norms: no decay

The conventions and how each is composed (why it is exact):

- ``decay(rule, mode)``: the rule runs with λ = 0 and the decay is applied around it. ``coupled``: g ← g + λ θ_{t-1}
  (L2 in the gradient, so also in the moments); ``decoupled``: θ_t = θ'_t - α λ θ_{t-1}; ``decoupled_first``: the
  rule steps from (1 - α λ) θ_{t-1} (the same as ``decoupled`` unless the rule reads θ, as a trust ratio does);
  ``decoupled_fixed``:
  θ_t = θ'_t - λ θ_{t-1} (λ not scaled by α); ``proximal``: θ_t = θ'_t / (1 + α λ). θ'_t is the rule's step at
  λ = 0, which reads θ_{t-1} only where λ enters, so the composition is the rule with λ moved.
- ``no_bias_correction(rule)``: the rule sees a step count t → ∞ for its t-dependent factors (β^t = 0, so every
  1 - β^t is 1; RAdam's ρ_t is ρ_∞; warm-ups are over); the State's ``t`` still counts 1, 2, 3, ...
- ``bias_correction_outside(rule, beta1, beta2)``: no bias correction inside, and the step's displacement
  θ'_t - θ_{t-1} scaled by √(1 - β2^t) / (1 - β1^t) (Adam's "step size" form; in a trust-ratio rule this puts the
  correction outside τ, where it no longer cancels).
- ``eps_inside_root(rule, field, beta)``: m̂ / √(v̂ + ε) in place of m̂ / (√v̂ + ε). The rule is run twice: once
  as is, for the new state, and once with ε = 0 on a copy of the state whose ``field`` is raised by
  c = ε (1 - β^t) / β, so that its bias-corrected v̂ is v̂_t + ε, for the parameters (β > 0; β = 0 is refused).
- ``eps_clamp(rule, field, beta)``: m̂ / max(√v̂, ε) (ε as a floor on the root): the same construction with
  v̂ raised where it is below ε², to ε².
- ``eps_hat(rule, beta)``: ε scaled by √(1 - β2^t) (Adam's ε̂: the denominator (√v_t + ε) / √(1 - β2^t)).
- ``no_clip(rule)``: a trust-ratio rule (LARS, LAMB, RaLars) with no φ clamp: ``scale_clip = (0, inf)``.
- ``exclude_1d(rule, other)``: tensors with at most one dimension (biases, norm weights) are stepped by ``other``
  (say, the rule without decay), the rest by ``rule``; each part keeps its own state, shown merged.
- ``rectified(rule)``: RAdam's rectifier around an Adam-like rule (AdaBelief's official ``rectify=True``).
- ``trust_eps(rule)``: ε added to a trust ratio's denominator, τ = φ(‖θ‖) / (‖u‖ + ε).
- ``swap(rule, name, fn, label)``: one of the rule module's named helpers replaced (a schedule, a guard).
- ``fixed(rule, **hp)``: some hyperparameters pinned (a peer's constant, or a convention with a value).
- ``sgd``: torch's heavy-ball SGD, the rule LARS implementations fall back to on excluded tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = [
    "DECAY_MODES",
    "Variant",
    "bias_correction_outside",
    "decay",
    "eps_clamp",
    "eps_hat",
    "eps_inside_root",
    "exclude_1d",
    "fixed",
    "no_bias_correction",
    "no_clip",
    "rectified",
    "sgd",
    "swap",
    "trust_eps",
]

#: the weight-decay placements ``decay`` composes
DECAY_MODES = ("coupled", "decoupled", "decoupled_first", "decoupled_fixed", "proximal")
#: a step count whose β^t is 0 in float64 for every β < 1 - 1e-12 (bias corrections 1 - β^t are exactly 1)
_T_INFINITE = 10**18


class Variant:
    """A reference rule built from another: ``init``/``step`` like any rule, and a ``name`` saying what changed."""

    def __init__(self, name: str, init: Callable[..., Any], step: Callable[..., Any]) -> None:
        self.name, self.init, self.step = name, init, step

    def __repr__(self) -> str:
        return f"Variant({self.name})"


def _name(rule: Any) -> str:
    return getattr(rule, "name", None) or getattr(rule, "__name__", type(rule).__name__).rpartition(".")[2]


def _with_t(state: Any, t: int) -> Any:
    if hasattr(state, "_replace"):
        return state._replace(t=t)
    copy = SimpleNamespace(**vars(state))
    copy.t = t
    return copy


def _with_field(state: Any, name: str, values: list[np.ndarray]) -> Any:
    if hasattr(state, "_replace"):
        return state._replace(**{name: values})
    copy = SimpleNamespace(**vars(state))
    setattr(copy, name, values)
    return copy


def fixed(rule: Any, **pinned: Any) -> Variant:
    """The rule with some hyperparameters pinned (they override whatever the caller passes)."""

    def init(params: Any, **hp: Any) -> Any:
        return rule.init(params, **{**hp, **pinned})

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        return rule.step(params, grads, state, **{**hp, **pinned})

    text = ", ".join(f"{k}={v!r}" for k, v in pinned.items())
    return Variant(f"{_name(rule)}[{text}]", init, step)


def no_clip(rule: Any) -> Variant:
    """A trust-ratio rule without the φ clamp on ‖θ‖: τ = ‖θ‖ / ‖u‖."""
    v = fixed(rule, scale_clip=(0.0, math.inf))
    v.name = f"{_name(rule)}[no φ clamp]"
    return v


def decay(rule: Any, mode: str) -> Variant:
    """The rule with its weight decay λ (``weight_decay``) placed as ``mode`` (one of DECAY_MODES) instead."""
    if mode not in DECAY_MODES:
        raise ValueError(f"mode must be one of {DECAY_MODES}, got {mode!r}")

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        lam, lr = hp.get("weight_decay", 0.0), hp.get("lr", 1e-3)
        old = [np.asarray(p, dtype=np.float64) for p in params]
        hp = {**hp, "weight_decay": 0.0}
        if mode == "coupled":
            return rule.step(params, [np.asarray(g) + lam * p for g, p in zip(grads, old)], state, **hp)
        if mode == "decoupled_first":
            return rule.step([(1 - lr * lam) * p for p in old], grads, state, **hp)
        new, state = rule.step(params, grads, state, **hp)
        if mode == "decoupled":
            new = [n - lr * lam * p for n, p in zip(new, old)]
        elif mode == "decoupled_fixed":
            new = [n - lam * p for n, p in zip(new, old)]
        else:
            new = [n / (1 + lr * lam) for n in new]
        return new, state

    return Variant(f"{_name(rule)}[{mode} decay]", rule.init, step)


def no_bias_correction(rule: Any) -> Variant:
    """The rule without bias correction: its t-dependent factors see t → ∞ (every 1 - β^t = 1)."""

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        t = state.t
        new, state = rule.step(params, grads, _with_t(state, _T_INFINITE), **hp)
        return new, _with_t(state, t + 1)

    return Variant(f"{_name(rule)}[no bias correction]", rule.init, step)


def bias_correction_outside(rule: Any, beta1: int = 0, beta2: int | None = 1) -> Variant:
    """No bias correction inside the rule; its displacement scaled by √(1 - β2^t) / (1 - β1^t) instead.

    ``beta1``/``beta2`` index ``betas`` (the first and second moments' coefficients); ``beta2=None`` scales by
    1 / (1 - β1^t) alone (the second moment then goes uncorrected)."""
    inner = no_bias_correction(rule)

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        t = state.t + 1
        b1 = hp["betas"][beta1]
        c = (1.0 if beta2 is None else math.sqrt(1 - hp["betas"][beta2] ** t)) / (1 - b1**t)
        old = [np.asarray(p, dtype=np.float64) for p in params]
        new, state = inner.step(params, grads, state, **hp)
        return [p + c * (n - p) for n, p in zip(new, old)], state

    return Variant(f"{_name(rule)}[bias correction outside]", rule.init, step)


def _raised(rule: Any, field: str, beta: int, floor: bool, label: str) -> Variant:
    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        eps, b = hp.get("eps", 1e-8), hp["betas"][beta]
        if b <= 0.0:
            raise ValueError(f"{label} needs betas[{beta}] > 0, got {b!r}")
        t = state.t + 1
        _, new_state = rule.step(params, grads, state, **hp)  # the state, as the rule keeps it
        # the bias-corrected value the rule will divide by, and what to add to the stored one for v̂ + target
        corr = 1 - b**t if t < _T_INFINITE else 1.0
        old = getattr(state, field)
        if floor:
            v_hat = [np.asarray(x) / corr for x in getattr(new_state, field)]
            lift = [np.where(vh < eps**2, eps**2 - vh, 0.0) for vh in v_hat]
        else:
            lift = [np.full(np.shape(x), eps) for x in old]
        shifted = [np.asarray(x) + c * corr / b for x, c in zip(old, lift)]
        new_params, _ = rule.step(params, grads, _with_field(state, field, shifted), **{**hp, "eps": 0.0})
        return new_params, new_state

    return Variant(f"{_name(rule)}[{label}]", rule.init, step)


def eps_inside_root(rule: Any, field: str = "v", beta: int = 1) -> Variant:
    """m̂ / √(v̂ + ε) in place of m̂ / (√v̂ + ε); ``field`` is the second-moment buffer, ``betas[beta]`` its β."""
    return _raised(rule, field, beta, False, "ε inside the root")


def eps_clamp(rule: Any, field: str = "v", beta: int = 1) -> Variant:
    """m̂ / max(√v̂, ε) in place of m̂ / (√v̂ + ε) (ε a floor on the root)."""
    return _raised(rule, field, beta, True, "ε as a clamp")


def exclude_1d(rule: Any, other: Any) -> Variant:
    """Tensors with at most one dimension are stepped by ``other``, the rest by ``rule`` (each its own state)."""

    def split(params: Sequence[Any]) -> tuple[list[int], list[int]]:
        low = [i for i, p in enumerate(params) if np.ndim(p) <= 1]
        return [i for i in range(len(params)) if i not in low], low

    def merged(params: Sequence[Any], high: list[int], low: list[int], s_hi: Any, s_lo: Any, t: int) -> Any:
        fields: dict[str, list[Any]] = {}
        for idx, s in ((high, s_hi), (low, s_lo)):
            if s is None:
                continue
            for name, values in vars(s).items() if not hasattr(s, "_fields") else s._asdict().items():
                if isinstance(values, list) and len(values) == len(idx):
                    fields.setdefault(name, [None] * len(params))
                    for j, i in enumerate(idx):
                        fields[name][i] = values[j]
        return SimpleNamespace(**fields, t=t, parts=[s_hi, s_lo])

    def init(params: Any, **hp: Any) -> Any:
        high, low = split(params)
        s_hi = rule.init([params[i] for i in high], **hp) if high else None
        s_lo = other.init([params[i] for i in low], **hp) if low else None
        return merged(params, high, low, s_hi, s_lo, 0)

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        high, low = split(params)
        s_hi, s_lo = state.parts
        new: list[Any] = [None] * len(params)
        for idx, part, which in ((high, 0, rule), (low, 1, other)):
            if idx:
                out, s = which.step([params[i] for i in idx], [grads[i] for i in idx], state.parts[part], **hp)
                for j, i in enumerate(idx):
                    new[i] = out[j]
                s_hi, s_lo = (s, s_lo) if part == 0 else (s_hi, s)
        return new, merged(params, high, low, s_hi, s_lo, state.t + 1)

    return Variant(f"{_name(rule)}[1-d tensors: {_name(other)}]", init, step)


def rectified(
    rule: Any, m: str = "m", beta1: int = 0, beta2: int = 1, threshold: float = 5.0, sgd: bool = True
) -> Variant:
    """RAdam's rectification (Liu et al., 2019) around an Adam-like rule, as the AdaBelief and RAdam codes place it.

    With ρ_∞ = 2 / (1 - β2) - 1 and ρ_t = ρ_∞ - 2 t β2^t / (1 - β2^t): where ρ_t >= ``threshold`` the step is the
    rule's with its bias correction outside (``bias_correction_outside``), scaled by
    r_t = √[(ρ_t - 4)(ρ_t - 2) ρ_∞ / ((ρ_∞ - 4)(ρ_∞ - 2) ρ_t)]; below it, θ_t = θ_{t-1} - α m_t / (1 - β1^t)
    (``sgd=True``, "degenerated to SGD", ``m`` names the first moment) or no step at all.
    """
    inner = bias_correction_outside(rule, beta1, beta2)

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        t = state.t + 1
        b1, b2 = hp["betas"][beta1], hp["betas"][beta2]
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        old = [np.asarray(p, dtype=np.float64) for p in params]
        new, state = inner.step(params, grads, state, **hp)
        if rho >= threshold:
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            return [p + r * (n - p) for n, p in zip(new, old)], state
        if sgd:
            lr = hp.get("lr", 1e-3)
            return [p - lr * np.asarray(mt) / (1 - b1**t) for p, mt in zip(old, getattr(state, m))], state
        return old, state

    return Variant(f"{_name(rule)}[rectified, ρ_t >= {threshold:g}]", rule.init, step)


def trust_eps(rule: Any) -> Variant:
    """A trust-ratio rule (a reference module calling ``trust(num, den)``) with ε added to the ratio's denominator:
    τ = φ(‖θ‖) / (‖u‖ + ε) (still 1 where either norm is 0). The rule's own ``trust`` helper is swapped for the
    duration of its step, so its equations are not retyped."""
    if not callable(getattr(rule, "trust", None)):
        raise TypeError(f"{_name(rule)} has no trust() helper to compose with")

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        original, eps = rule.trust, hp.get("eps", 1e-8)
        rule.trust = lambda num, den: original(num, den + eps) if den > 0.0 else original(num, den)
        try:
            return rule.step(params, grads, state, **hp)
        finally:
            rule.trust = original

    return Variant(f"{_name(rule)}[ε in the trust ratio]", rule.init, step)


def _sgd_init(params: Any, **hp: Any) -> SimpleNamespace:
    return SimpleNamespace(v=[np.zeros_like(np.asarray(p, dtype=np.float64)) for p in params], t=0)


def _sgd_step(
    params: Any,
    grads: Any,
    state: Any,
    *,
    lr: float = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    **_: Any,
) -> Any:
    t, new_p, new_v = state.t + 1, [], []
    for theta, g, v in zip(params, grads, state.v):
        theta = np.asarray(theta, dtype=np.float64)
        d = np.asarray(g, dtype=np.float64) + weight_decay * theta
        v = d if t == 1 or momentum == 0 else momentum * v + (1 - dampening) * d  # m = 0: no buffer
        new_p.append(theta - lr * (d + momentum * v if nesterov else v))
        new_v.append(v)
    return new_p, SimpleNamespace(v=new_v, t=t)


#: heavy-ball SGD as torch.optim.SGD has it (v_1 = g̃_1, v_t = m v_{t-1} + (1 - δ) g̃_t, g̃ = g + λθ; with m = 0,
#: θ_t = θ_{t-1} - α g̃_t): what LARS
#: implementations step excluded tensors with (``exclude_1d(lars, fixed(sgd, weight_decay=0.0))``); ignores other
#: hyperparameters
sgd = Variant("sgd", _sgd_init, _sgd_step)


def eps_hat(rule: Any, beta: int = 1) -> Variant:
    """ε scaled by √(1 - β2^t) (Adam's ε̂, the "efficient version" of its Algorithm 1): m̂ / (√v̂ + ε √(1 - β2^t)),
    i.e. the denominator (√v_t + ε) / √(1 - β2^t). Every use of ε in the rule sees the scaled value."""

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        t = state.t + 1
        eps = hp.get("eps", 1e-8) * math.sqrt(1 - hp["betas"][beta] ** t)
        return rule.step(params, grads, state, **{**hp, "eps": eps})

    return Variant(f"{_name(rule)}[ε̂ = ε √(1 - β2^t)]", rule.init, step)


def swap(rule: Any, name: str, replacement: Callable[..., Any], label: str) -> Variant:
    """The rule (a reference module) with one of its named helper functions replaced for the duration of its step:
    a convention that lives inside a helper (a warm-up schedule, a norm, a guard) without retyping the equations.
    ``trust_eps`` is this, for the trust ratio's ``trust``."""
    if not callable(getattr(rule, name, None)):
        raise TypeError(f"{_name(rule)} has no helper {name!r} to replace")

    def step(params: Any, grads: Any, state: Any, **hp: Any) -> Any:
        original = getattr(rule, name)
        setattr(rule, name, replacement)
        try:
            return rule.step(params, grads, state, **hp)
        finally:
            setattr(rule, name, original)

    return Variant(f"{_name(rule)}[{label}]", rule.init, step)
