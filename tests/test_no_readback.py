"""The device-scalar path (what CUDA, DTensor and torch.compile take) never reads a tensor's value back to Python:
on a GPU every such read would be a host-device sync. Checked on the CPU by making every read-back raise during
step(): ``Tensor.item``, ``tolist``, ``__bool__``, ``__float__``, ``__int__`` and ``__index__``. (On a GPU,
torch.cuda.set_sync_debug_mode("error") is the same check; no GPU was available to this suite.)"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from tests.registry import BASE, RULES, torch_class
from tests.test_step_for_step import device_scalars

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")

#: per rule, the settings that reach every branch of its math
OPTIONS = {
    "lars": [dict(momentum=0.9, weight_decay=0.01), dict(momentum=0.9, nesterov=True, scale_clip=(0.0, 5.0))],
    "lamb": [dict(weight_decay=0.01), dict(scale_clip=(0.1, 2.0))],
    "ralars": [dict(weight_decay=0.01), dict(force_adaptive_momentum=True)],
    "tadam": [dict(weight_decay=0.01), dict(amsgrad=True, dof=3.0)],
    "adabelief": [dict(weight_decay=0.01), dict(amsgrad=True)],
    "adamp": [dict(weight_decay=0.01, delta=10.0), dict(amsgrad=True, nesterov=True, delta=1e-6)],
    "adan": [dict(weight_decay=0.01), dict(amsgrad=True)],
    "ademamix": [dict(weight_decay=0.01), dict(alpha_warmup=5, beta3_warmup=5)],
}


@contextlib.contextmanager
def refusing_readback():
    """Within: every read of a tensor's value back to Python raises."""

    def refuse(name):
        def read(*args, **kwargs):
            raise AssertionError(f"step() read a tensor back to Python (Tensor.{name})")

        return read

    with pytest.MonkeyPatch.context() as mp:
        for name in READS:
            mp.setattr(torch.Tensor, name, refuse(name))
        yield


@pytest.mark.parametrize("name", BASE)
def test_the_device_scalar_path_reads_nothing_back(name):
    assert set(OPTIONS) == set(BASE)
    for kw in OPTIONS[name]:
        gen = torch.Generator().manual_seed(0)
        params = [nn.Parameter(torch.randn(s, generator=gen)) for s in [(4, 3), (5,), (2, 3, 2)]]
        opt = device_scalars(torch_class(RULES[name]))(params, lr=torch.tensor(0.01), foreach=True, **kw)
        expected = torch_class(RULES[name])(
            [nn.Parameter(p.detach().clone()) for p in params], lr=0.01, foreach=True, **kw
        )
        grads = [[torch.randn(p.shape, generator=gen) for p in params] for _ in range(3)]
        for step_grads in grads:  # the host path, for the numbers (before reads are refused)
            for p, g in zip(expected.param_groups[0]["params"], step_grads):
                p.grad = g.clone()
            expected.step()
        for p, g in zip(params, grads[0]):  # state is made on the first step
            p.grad = g.clone()
        opt.step()
        with refusing_readback():
            for step_grads in grads[1:]:
                for p, g in zip(params, step_grads):
                    p.grad = g.clone()
                opt.step()
        for p, q in zip(params, expected.param_groups[0]["params"]):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
