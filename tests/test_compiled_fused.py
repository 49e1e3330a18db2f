"""fused=True on CUDA: the rule's list function compiled (torch.compile, Triton kernels there), one foreach batch
per (device, dtype). No GPU is available to this suite, so the path's logic is checked on the CPU by routing CPU
tensors through it (``_fused.COMPILED_DEVICES``): it matches the default path, and handles maximize, including
Adan's initial state made from -g. It compiles with fullgraph=True, which fails on any graph break: so nothing in it
reads a value back to Python (a host sync on CUDA). Counting the compiled frames shows that later steps reuse the
first compilation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from holocron_torch.optim import _fused
from tests.registry import BASE, RULES, torch_class
from tests.test_no_readback import OPTIONS


@pytest.fixture
def compiled_on_cpu(monkeypatch):
    monkeypatch.setattr(_fused, "COMPILED_DEVICES", ("cpu",))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", BASE)
def test_compiled_fused_path_matches_the_default_path(name, compiled_on_cpu):
    kw = {**OPTIONS[name][0], "maximize": True}
    gen = torch.Generator().manual_seed(1)
    shapes = [(4, 3), (5,), (2, 3, 2)]
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(4)]
    runs = []
    for fused in (True, None):
        params = [nn.Parameter(x.clone()) for x in start]
        opt = torch_class(RULES[name])(params, lr=0.01, fused=fused, **kw)
        for t, step_grads in enumerate(grads):
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            opt.step()
            if fused and t == 0:
                frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        if fused:
            assert frames >= 1 and torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames  # no recompile
        runs.append((params, opt))
    (pf, of), (pd, od) = runs
    for p, q in zip(pf, pd):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        for k, x in od.state[q].items():
            torch.testing.assert_close(of.state[p][k], x, rtol=1e-12, atol=1e-14, msg=lambda m, k=k: f"{k}: {m}")
