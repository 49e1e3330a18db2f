"""Build an optimizer by name: ``create("lamb", model, lr=1e-3)``, ``create("lookahead_adan", model)``.

Every name comes from the registry (``reference.RULES``): a base rule (``"lamb"``, ``"AdaBelief"``; case does
not matter), or a wrapper composed with a base as ``<wrapper>_<base>`` (``"lookahead_lamb"``, ``"scout_adan"``),
whose own hyperparameters (``sync_rate``, ``sync_period``) go to the wrapper and the rest to the base.

>>> from holocron_torch import optim
>>> opt = optim.create("lookahead_lamb", model, lr=1e-3, weight_decay=0.01, sync_period=5)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

import holocron_torch.optim as optim
from reference import BASE_RULES, WRAPPERS
from reference._spec import Rule

__all__ = ["NORM_LAYERS", "create", "names", "resolve", "split_hyperparameters", "weight_decay_groups"]

#: layers whose parameters never get weight decay (batch/instance norms, layer/group/RMS norms)
NORM_LAYERS: tuple[type[nn.Module], ...] = (_NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm)
#: keyword arguments every base optimizer takes besides its rule's hyperparameters
_OPTIONS = ("foreach", "maximize", "fused")


def names() -> list[str]:
    """Every name :func:`create` accepts (lower case): the base rules, then each ``<wrapper>_<base>``."""
    return list(BASE_RULES) + [f"{w}_{b}" for w in WRAPPERS for b in BASE_RULES]


def _valid_names_text() -> str:
    example = f"{next(iter(WRAPPERS))}_{next(iter(BASE_RULES))}"
    return (
        f"valid names: {', '.join(BASE_RULES)}, or <wrapper>_<base> with a wrapper in "
        f"({', '.join(WRAPPERS)}), e.g. {example}"
    )


def resolve(name: str) -> tuple[Rule, Rule | None]:
    """The registry rules behind an optimizer name: ``(base rule, wrapper rule or None)``.

    Raises:
        ValueError: the name is not a base rule nor ``<wrapper>_<base>``; the message lists the valid names.
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key in BASE_RULES:
        return BASE_RULES[key], None
    if key in WRAPPERS:
        raise ValueError(
            f"{name!r} is a wrapper: name the optimizer it wraps too, e.g. {key}_{next(iter(BASE_RULES))} "
            f"(bases: {', '.join(BASE_RULES)})"
        )
    wrapper, _, base = key.partition("_")
    if wrapper in WRAPPERS and base in BASE_RULES:
        return BASE_RULES[base], WRAPPERS[wrapper]
    raise ValueError(f"unknown optimizer {name!r}; {_valid_names_text()}")


def split_hyperparameters(name: str, hyperparameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword arguments for ``name`` into (base's, wrapper's); the wrapper's is empty for a base rule.

    Raises:
        ValueError: unknown optimizer name.
        TypeError: a name neither the base nor the wrapper takes (the message lists the ones they take).
    """
    base, wrapper = resolve(name)
    own = {h.name for h in wrapper.hypers} if wrapper is not None else set()
    base_hp = {k: v for k, v in hyperparameters.items() if k not in own}
    wrapper_hp = {k: v for k, v in hyperparameters.items() if k in own}
    accepted = [h.name for h in base.hypers] + list(_OPTIONS) + sorted(own)
    unknown = [k for k in base_hp if k not in accepted]
    if unknown:
        label = f"{wrapper.cls}({base.cls})" if wrapper is not None else base.cls
        raise TypeError(f"{label} got unexpected hyperparameter(s) {unknown}; it takes {', '.join(accepted)}")
    return base_hp, wrapper_hp


def weight_decay_groups(model: nn.Module, weight_decay: float, no_decay: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Two param groups: weight decay on the weights, none on biases and normalisation layers.

    A trainable parameter goes to the no-decay group (``weight_decay=0.0``) when it has at most one dimension
    (biases, norm scales and shifts, scalars), belongs to a layer in :data:`NORM_LAYERS`, or is named in
    ``no_decay``; every other trainable parameter goes to the first group, with ``weight_decay``. Frozen
    parameters (``requires_grad=False``) are left out; a parameter shared by several modules appears once.

    Args:
        model: the module whose parameters to split.
        weight_decay: the decay of the first group (validated by the optimizer that receives the groups).
        no_decay: more parameters to keep free of decay (e.g. position embeddings), each given by its name in
            ``model.named_parameters()`` or by a dotted suffix of it (``"pos_embed"`` matches
            ``"encoder.pos_embed"``).

    Returns:
        ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}]``, without
        a group that would be empty. Pass it to any optimizer in place of ``model.parameters()``.

    Raises:
        ValueError: an entry of ``no_decay`` names no parameter of the model.
    """
    extra = list(no_decay)
    matched: set[str] = set()
    decay: list[nn.Parameter] = []
    free: list[nn.Parameter] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{module_name}.{param_name}" if module_name else param_name
            hits = {e for e in extra if full == e or full.endswith(f".{e}")}
            matched |= hits
            if p.ndim <= 1 or isinstance(module, NORM_LAYERS) or hits:
                free.append(p)
            else:
                decay.append(p)
    missing = [e for e in extra if e not in matched]
    if missing:
        raise ValueError(f"no_decay names no trainable parameter of the model: {missing}")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": free, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def create(
    name: str,
    model_or_params: nn.Module | Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    *,
    decay_bias_and_norm: bool = False,
    **hyperparameters: Any,
) -> torch.optim.Optimizer:
    """An optimizer by registry name, with the hyperparameters given (the registry's defaults for the rest).

    Args:
        name: a base rule (``"lamb"``, ``"AdaBelief"``: case-insensitive) or ``<wrapper>_<base>``
            (``"lookahead_lamb"``, ``"scout_adan"``); :func:`names` lists them all.
        model_or_params: an ``nn.Module`` (its parameters are optimized), or what any torch optimizer takes:
            an iterable of tensors or of param-group dicts.
        decay_bias_and_norm: only with a module and a non-zero ``weight_decay``: by default (False) the
            parameters are split by :func:`weight_decay_groups` so that biases and normalisation layers get
            no weight decay; True decays every parameter alike.
        **hyperparameters: the rule's hyperparameters (``lr``, ``betas``, ``weight_decay``, ...), ``foreach``
            and ``maximize``; for a wrapped name also ``sync_rate`` / ``sync_period``, which go to the wrapper.

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a value out of its valid range.
        TypeError: a hyperparameter the optimizer does not take, or a value of the wrong type.
    """
    base, wrapper = resolve(name)
    base_hp, wrapper_hp = split_hyperparameters(name, hyperparameters)
    params: Any = model_or_params
    if isinstance(model_or_params, nn.Module):
        wd = base_hp.get("weight_decay", 0.0)
        if not decay_bias_and_norm and not isinstance(wd, bool) and isinstance(wd, (int, float)) and wd != 0:
            params = weight_decay_groups(model_or_params, base_hp.pop("weight_decay"))
        else:
            params = model_or_params.parameters()
    opt = getattr(optim, base.cls)(params, **base_hp)
    if wrapper is not None:
        opt = getattr(optim, wrapper.cls)(opt, **wrapper_hp)
    return opt
