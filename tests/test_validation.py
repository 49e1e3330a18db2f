"""Every bad constructor argument is refused by name: ValueError for a bad value, TypeError for a wrong type.
One table lists them all; the test walks it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import holocron_torch.optim as optim
from tests.registry import BASE, RULES, torch_class

NAN, INF = math.nan, math.inf

# (rule, keyword arguments, exception, text the message must contain)
COMMON = [
    (dict(lr=-1e-3), ValueError, "lr"),
    (dict(lr=NAN), ValueError, "lr"),
    (dict(lr=INF), ValueError, "lr"),
    (dict(lr="fast"), TypeError, "lr"),
    (dict(lr=torch.tensor([1e-3, 1e-3])), ValueError, "lr"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(weight_decay=NAN), ValueError, "weight_decay"),
    (dict(foreach="yes"), TypeError, "foreach"),
    (dict(fused="yes"), TypeError, "fused"),
    (dict(fused=1), TypeError, "fused"),
    (dict(fused=True, foreach=True), ValueError, "fused"),
    (dict(maximize=1), TypeError, "maximize"),
]
ADAPTIVE = [
    (dict(eps=0.0), ValueError, "eps"),
    (dict(eps=-1e-8), ValueError, "eps"),
    (dict(betas=(1.0, 0.999)), ValueError, "betas[0]"),
    (dict(betas=(0.9, -0.1)), ValueError, "betas[1]"),
    (dict(betas=(0.9, NAN)), ValueError, "betas[1]"),
    (dict(betas=(0.9,)), ValueError, "betas"),
    (dict(betas=(0.9, 0.99, 0.999, 0.9999)), ValueError, "betas"),
]
SPECIFIC = {
    "lars": [
        (dict(momentum=-0.1), ValueError, "momentum"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(dampening=1.5), ValueError, "dampening"),
        (dict(nesterov=True), ValueError, "nesterov"),
        (dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "nesterov"),
        (dict(nesterov="yes"), TypeError, "nesterov"),
        (dict(scale_clip=(1.0,)), ValueError, "scale_clip"),
        (dict(scale_clip=(2.0, 1.0)), ValueError, "scale_clip"),
        (dict(scale_clip=(-1.0, 1.0)), ValueError, "scale_clip"),
        (dict(scale_clip=(0.0, INF)), ValueError, "scale_clip"),
        (dict(scale_clip=5.0), ValueError, "scale_clip"),
    ],
    "lamb": [(dict(scale_clip=(3.0, 1.0)), ValueError, "scale_clip")],
    "ralars": [
        (dict(force_adaptive_momentum=0.5), TypeError, "force_adaptive_momentum"),
        (dict(scale_clip=(0.0,)), ValueError, "scale_clip"),
    ],
    "tadam": [
        (dict(dof=0.0), ValueError, "dof"),
        (dict(dof=-2.0), ValueError, "dof"),
        (dict(dof=NAN), ValueError, "dof"),
        (dict(betas=(0.0, 0.999)), ValueError, "betas[0]"),
        (dict(betas=(0.3, 0.999)), ValueError, "betas[0]"),
        (dict(amsgrad=None), TypeError, "amsgrad"),
    ],
    "adabelief": [
        (dict(capturable=True), ValueError, "capturable"),
        (dict(differentiable=True), ValueError, "differentiable"),
    ],
    "adamp": [
        (dict(delta=0.0), ValueError, "delta"),
        (dict(delta=-0.1), ValueError, "delta"),
        (dict(wd_ratio=1.5), ValueError, "wd_ratio"),
    ],
    "adan": [
        (dict(betas=(0.98, 0.92)), ValueError, "betas"),
        (dict(betas=(0.98, 0.92, 1.0)), ValueError, "betas[2]"),
        (dict(betas=(-0.1, 0.92, 0.99)), ValueError, "betas[0]"),
    ],
    "ademamix": [
        (dict(alpha=-1.0), ValueError, "alpha"),
        (dict(amsgrad=True), ValueError, "amsgrad"),
        (dict(betas=(0.9, 0.999)), ValueError, "betas"),
        (dict(alpha_warmup=0), ValueError, "alpha_warmup"),
        (dict(beta3_warmup=2.5), TypeError, "beta3_warmup"),
        (dict(beta3_warmup=10, betas=(0.0, 0.999, 0.9999)), ValueError, "beta3_warmup"),
    ],
}


def table():
    for name in BASE:
        rows = COMMON + (ADAPTIVE if "eps" in RULES[name].defaults else []) + SPECIFIC.get(name, [])
        for kwargs, exc, text in rows:
            if name == "adan" and kwargs.get("betas") is not None and len(kwargs["betas"]) == 2 and "[" in text:
                continue  # Adan takes three betas: a 2-tuple is refused for its length (own row)
            if name == "ademamix" and "betas" in kwargs and len(kwargs["betas"]) == 2 and "[" in text:
                continue
            yield pytest.param(name, kwargs, exc, text, id=f"{name}-{kwargs}")


INVALID = list(table())


@pytest.mark.parametrize(("name", "kwargs", "exc", "text"), INVALID)
def test_bad_hyperparameter_is_refused_by_name(name, kwargs, exc, text):
    with pytest.raises(exc, match=text.replace("[", r"\[").replace("]", r"\]")) as info:
        torch_class(RULES[name])([nn.Parameter(torch.zeros(2))], **kwargs)
    if "lr" in kwargs and not isinstance(kwargs["lr"], torch.Tensor):
        assert repr(kwargs["lr"]) in str(info.value)  # the message names the value too


WRAPPER_ROWS = [
    (dict(sync_rate=0.0), ValueError, "sync_rate"),
    (dict(sync_rate=1.5), ValueError, "sync_rate"),
    (dict(sync_rate=-0.5), ValueError, "sync_rate"),
    (dict(sync_rate=NAN), ValueError, "sync_rate"),
    (dict(sync_period=0), ValueError, "sync_period"),
    (dict(sync_period=2.0), TypeError, "sync_period"),
    (dict(sync_period=True), TypeError, "sync_period"),
]


@pytest.mark.parametrize("wrapper", ["Lookahead", "Scout"])
@pytest.mark.parametrize(("kwargs", "exc", "text"), WRAPPER_ROWS)
def test_bad_wrapper_argument_is_refused_by_name(wrapper, kwargs, exc, text):
    base = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(exc, match=text):
        getattr(optim, wrapper)(base, **kwargs)


def test_scout_needs_two_fast_steps_and_wrappers_need_an_optimizer():
    with pytest.raises(ValueError, match="sync_period"):
        optim.Scout(torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1), sync_period=1)
    with pytest.raises(TypeError, match="base_optimizer"):
        optim.Lookahead([nn.Parameter(torch.zeros(2))])


@pytest.mark.parametrize("name", BASE)
def test_empty_or_duplicated_parameters_are_refused(name):
    cls = torch_class(RULES[name])
    with pytest.raises(ValueError, match="empty"):
        cls([])
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="more than one"):
        cls([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="complex"):
        cls([nn.Parameter(torch.zeros(2, dtype=torch.complex64))])


def test_the_table_is_long():
    assert len(INVALID) + 2 * len(WRAPPER_ROWS) >= 150
