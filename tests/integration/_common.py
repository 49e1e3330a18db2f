"""What the framework tests share: the eleven optimizers (torch.optim.AdamW, the control, then the eight rules and
the two wrappers), how each is built from parameters or param groups, and the bitwise comparisons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from holocron_torch import optim

#: the control first; every test runs for each of these
NAMES = ("adamw", "lars", "lamb", "ralars", "tadam", "adabelief", "adamp", "adan", "ademamix", "lookahead", "scout")
#: what every optimizer gets; LARS also gets momentum (so that a momentum logger has something to read)
LR, WEIGHT_DECAY = 1e-2, 0.01
_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "adamw": torch.optim.AdamW,
    "lars": optim.LARS,
    "lamb": optim.LAMB,
    "ralars": optim.RaLars,
    "tadam": optim.TAdam,
    "adabelief": optim.AdaBelief,
    "adamp": optim.AdamP,
    "adan": optim.Adan,
    "ademamix": optim.AdEMAMix,
}
#: each wrapper around a different rule; sync_period 3, so that a resume after step 2 lands mid-period
WRAPPED: dict[str, tuple[type[torch.optim.Optimizer], type[torch.optim.Optimizer]]] = {
    "lookahead": (optim.Lookahead, optim.LAMB),
    "scout": (optim.Scout, optim.Adan),
}
WRAPPER_KWARGS = {"sync_rate": 0.5, "sync_period": 3}


def kwargs(name: str) -> dict[str, Any]:
    """The constructor keywords for ``name`` (a wrapper's are its base's plus its own)."""
    base = {"lr": LR, "weight_decay": WEIGHT_DECAY}
    if name == "lars":
        base["momentum"] = 0.9
    return {**base, **WRAPPER_KWARGS} if name in WRAPPED else base


def optimizer_cls(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class that takes ``(params_or_groups, **kwargs(name))``. For a wrapper (which takes an
    optimizer, not parameters) that is the subclass a user writes for a framework that builds the optimizer from a
    class (transformers' ``optimizer_cls_and_kwargs``, which calls anything else a factory): it builds the base
    rule over the parameters and wraps it."""
    if name not in WRAPPED:
        return _CLASSES[name]
    wrapper, base = WRAPPED[name]

    class Wrapped(wrapper):  # type: ignore[valid-type,misc]
        def __init__(self, params: Iterable[Any], sync_rate: float = 0.5, sync_period: int = 6, **kw: Any) -> None:
            super().__init__(base(params, **kw), sync_rate=sync_rate, sync_period=sync_period)

    Wrapped.__name__ = Wrapped.__qualname__ = f"{wrapper.__name__}{base.__name__}"
    return Wrapped


def build(name: str, params: Iterable[Any]) -> torch.optim.Optimizer:
    return optimizer_cls(name)(params, **kwargs(name))


def beta1(group: Mapping[str, Any]) -> float:
    """The first-moment coefficient a momentum logger should report for a group: betas[0], or LARS' momentum."""
    return float(group["betas"][0]) if "betas" in group else float(group["momentum"])


def assert_bitwise(actual: Any, expected: Any, where: str = "") -> None:
    """Nested state (dicts, lists, tuples, tensors, numbers) equal bit for bit, with the same structure."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{where}: {type(actual).__name__}, expected a tensor"
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, f"{where}: dtype/shape differ"
        assert torch.equal(actual, expected), f"{where}: max |diff| {(actual - expected).abs().max().item():.3g}"
    elif isinstance(expected, Mapping):
        assert isinstance(actual, Mapping) and set(actual) == set(expected), (
            f"{where}: keys {set(actual)} != {set(expected)}"
        )
        for k in expected:
            assert_bitwise(actual[k], expected[k], f"{where}/{k}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), (
            f"{where}: {actual!r} != {expected!r}"
        )
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_bitwise(a, e, f"{where}[{i}]")
    else:
        assert actual == expected or (actual != actual and expected != expected), f"{where}: {actual!r} != {expected!r}"


def snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The model's parameters and the optimizer's state dict, cloned: what a bitwise resume must reproduce."""
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    state = opt.state_dict()
    return {"params": params, "optimizer": _clone(state)}


def _clone(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, Mapping):
        return {k: _clone(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_clone(v) for v in x)
    return x
