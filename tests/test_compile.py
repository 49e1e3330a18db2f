"""torch.compile(opt.step, fullgraph=True): every rule traces without a graph break (so no host read-back in
step()), equals eager, and an LR scheduler changing a tensor lr does not recompile."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.testing

from tests.registry import BASE, RULES, torch_class

SETTINGS = {"lars": dict(momentum=0.9, weight_decay=0.01), "ademamix": dict(alpha_warmup=3, beta3_warmup=3)}


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
@pytest.mark.parametrize("name", BASE)
def test_compiled_step_has_no_graph_break_matches_eager_and_does_not_recompile(name, device):
    torch._dynamo.reset()
    torch.manual_seed(0)
    shapes = [(3, 4), (5,), ()]
    eager = [torch.randn(s, dtype=torch.float64, device=device, requires_grad=True) for s in shapes]
    comp = [p.detach().clone().requires_grad_() for p in eager]
    cls, kw = torch_class(RULES[name]), SETTINGS.get(name, {})
    opts = [cls(ps, lr=torch.tensor(0.01, dtype=torch.float64), **kw) for ps in (eager, comp)]
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    # compiled before the scheduler wraps opt.step with its (untraceable) call counter
    compiled_step = torch.compile(opts[1].step, fullgraph=True, backend=counter)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in opts]
    for i in range(4):
        for p, q in zip(eager, comp):
            g = torch.randn_like(p)
            p.grad, q.grad = g, g.clone()
        opts[0].step()
        opts[1].step() if i == 0 else compiled_step()  # the first (eager) step creates the state lazily
        if i == 1:
            compiled = counter.frame_count
        for s in scheds:
            s.step()
    assert compiled >= 1 and counter.frame_count == compiled  # the lr changes (tensor fill_) did not recompile
    assert float(opts[1].param_groups[0]["lr"]) == pytest.approx(0.01 * 0.5**4)
    for p, q in zip(eager, comp):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", BASE)
def test_compiled_maximize_reads_each_steps_gradient(name):
    """Under torch.compile, -g is formed in the traced math, not in _init_group: Dynamo runs _init_group eagerly and
    maps back only params, grads and state, so a -g made there was baked into the graph as the first call's constant
    (every later compiled step reused the first gradient)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    shapes = [(3, 4), (5,)]
    eager = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    comp = [p.detach().clone().requires_grad_() for p in eager]
    cls, kw = torch_class(RULES[name]), SETTINGS.get(name, {})
    opts = [cls(ps, lr=0.01, maximize=True, **kw) for ps in (eager, comp)]
    compiled_step = torch.compile(opts[1].step, fullgraph=True, backend="eager")
    for _ in range(3):
        for p, q in zip(eager, comp):
            g = torch.randn_like(p)
            p.grad, q.grad = g, g.clone()
        opts[0].step()
        compiled_step()
    for p, q in zip(eager, comp):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-12)
