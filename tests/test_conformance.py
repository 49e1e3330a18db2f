"""Registry-driven: every optimizer (and both wrappers) against every torch.optim convention a trainer uses."""

from __future__ import annotations

import copy
import inspect
import io
import pickle

import pytest
import torch
from torch import nn

import holocron_torch.optim as optim
from tests.registry import BASE, RULES, WRAPPED, torch_class

# a few non-default values per rule so that every code path holding state is exercised
SETTINGS = {
    "lars": dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
    "lamb": dict(lr=0.01, weight_decay=0.01),
    "ralars": dict(lr=0.01, weight_decay=0.01, force_adaptive_momentum=True),
    "tadam": dict(lr=0.01, amsgrad=True, weight_decay=0.01),
    "adabelief": dict(lr=0.01, amsgrad=True, weight_decay=0.01),
    "adamp": dict(lr=0.01, amsgrad=True, weight_decay=0.01, nesterov=True),
    "adan": dict(lr=0.01, amsgrad=True, weight_decay=0.01),
    "ademamix": dict(lr=0.01, weight_decay=0.01, alpha_warmup=5, beta3_warmup=5),
}
ALL = BASE + [f"{w}:{b}" for w, b in WRAPPED]


def model(seed: int = 0, dtype=torch.float64, device="cpu") -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).to(dtype=dtype, device=device)


def build(name: str, params, **over):
    """An optimizer by suite name: a rule ("lamb") or a wrapper around a rule ("lookahead:lamb")."""
    if ":" in name:
        w, b = name.split(":")
        return getattr(optim, RULES[w].cls)(build(b, params, **over), sync_period=3)
    return torch_class(RULES[name])(params, **{**SETTINGS[name], **over})


def batches(n: int, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(8, 4, generator=g, dtype=dtype).to(device), torch.randn(8, 2, generator=g, dtype=dtype).to(device))
        for _ in range(n)
    ]


def train(net: nn.Module, opt, data) -> None:
    for x, y in data:
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()


# ---- drop-in signatures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASE)
def test_signature_defaults_are_the_registry_defaults(name):
    rule = RULES[name]
    sig = inspect.signature(torch_class(rule).__init__).parameters
    for h in rule.hypers:
        assert sig[h.name].default == h.default, h.name
    assert sig["foreach"].kind is inspect.Parameter.KEYWORD_ONLY and sig["foreach"].default is None
    assert sig["maximize"].kind is inspect.Parameter.KEYWORD_ONLY and sig["maximize"].default is False
    assert sig["fused"].kind is inspect.Parameter.KEYWORD_ONLY and sig["fused"].default is None
    positional = [p for p in sig if sig[p].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][2:]
    spec_order = [h.name for h in rule.hypers if sig[h.name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == spec_order


@pytest.mark.parametrize("name", list(RULES))
def test_importable_from_optim_and_wrapper(name):
    import holocron_torch.optim.wrapper as wrapper

    cls = getattr(optim, RULES[name].cls)
    if RULES[name].wrapper:
        assert getattr(wrapper, RULES[name].cls) is cls


# ---- hyperparameters live in param groups -----------------------------------------------------------------
@pytest.mark.parametrize("name", BASE)
def test_per_group_hyperparameters_and_deepcopy_pickle(name):
    net = model()
    opt = build(name, [{"params": net[0].parameters(), "lr": 0.5}, {"params": net[2].parameters()}])
    assert [g["lr"] for g in opt.param_groups] == [0.5, SETTINGS[name]["lr"]]
    assert not any(h.name in vars(opt) for h in RULES[name].hypers)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert [g["lr"] for g in clone.param_groups] == [0.5, SETTINGS[name]["lr"]]


@pytest.mark.parametrize("name", BASE)
def test_add_param_group_fills_defaults_and_validates(name):
    net = model()
    opt = build(name, net[0].parameters())
    opt.add_param_group({"params": net[2].parameters()})
    assert opt.param_groups[1]["lr"] == SETTINGS[name]["lr"]
    extra = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": extra.parameters(), "lr": -1.0})
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize("name", BASE)
def test_tensor_lr_equals_float_lr(name):
    a, b = model(), model()
    train(a, build(name, a.parameters()), batches(3))
    train(b, build(name, b.parameters(), lr=torch.tensor(SETTINGS[name]["lr"], dtype=torch.float64)), batches(3))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ALL)
def test_lr_schedulers_change_the_update(name):
    a, b = model(), model()
    opt_a, opt_b = build(name, a.parameters()), build(name, b.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt_b, step_size=1, gamma=0.1)
    data = batches(4)
    train(a, opt_a, data[:1]), train(b, opt_b, data[:1])
    sched.step()
    base = opt_b.base_optimizer if hasattr(opt_b, "base_optimizer") else opt_b
    assert base.param_groups[0]["lr"] == pytest.approx(0.1 * SETTINGS[name.split(":")[-1]]["lr"])
    train(a, opt_a, data[1:2]), train(b, opt_b, data[1:2])
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = model()
    opt_c = build(name, c.parameters())
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(opt_c, max_lr=0.05, total_steps=4)  # cycles momentum / β1 too
    group, momenta = getattr(opt_c, "base_optimizer", opt_c).param_groups[0], set()
    for batch in data:
        train(c, opt_c, [batch])
        one_cycle.step()
        momenta.add(group["betas"][0] if "betas" in group else group["momentum"])
    assert len(momenta) == 3  # the base optimizer's own β1 (or momentum) cycles: down from 0.95 and back up
    assert all(torch.isfinite(p).all() for p in c.parameters())


# ---- state_dict: bitwise continuation --------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_state_dict_resume_is_bitwise_through_torch_save(name, device):
    data = batches(7, device=device)
    ref = model(device=device)
    ref_opt = build(name, ref.parameters())
    train(ref, ref_opt, data)  # uninterrupted

    net = model(device=device)
    opt = build(name, net.parameters())
    train(net, opt, data[:4])  # for a wrapper with sync_period 3: saved mid-period
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    fresh = model(seed=123, device=device)  # different values: everything must come from the checkpoint
    fresh.load_state_dict(ckpt["model"])
    fresh_opt = build(name, fresh.parameters())
    fresh_opt.load_state_dict(ckpt["opt"])
    train(fresh, fresh_opt, data[4:])
    for p, q in zip(ref.parameters(), fresh.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", BASE)
def test_state_holds_tensors_in_param_dtype_and_a_float64_step(name):
    net = model(dtype=torch.float32)
    opt = build(name, net.parameters())
    train(net, opt, batches(2, dtype=torch.float32))
    for p in net.parameters():
        st = opt.state[p]
        assert st["step"].dtype == torch.float64 and float(st["step"]) == 2
        for f in RULES[name].state_fields(opt.param_groups[0]):
            assert st[f].dtype == p.dtype and st[f].device == p.device


# ---- hooks, closure, zero_grad, None grads, p.grad, sparse ------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_step_and_state_dict_hooks_run(name):
    net = model()
    opt = build(name, net.parameters())
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    opt.register_state_dict_pre_hook(lambda o: seen.append("sd-pre"))
    opt.register_load_state_dict_post_hook(lambda o: seen.append("load-post"))
    train(net, opt, batches(1))
    opt.load_state_dict(opt.state_dict())
    assert seen == ["pre", "post", "sd-pre", "load-post"]


@pytest.mark.parametrize("name", ALL)
def test_closure_is_called_and_its_loss_returned(name):
    net = model()
    opt = build(name, net.parameters())
    x, y = batches(1)[0]

    def closure():
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        return loss

    before = [p.clone() for p in net.parameters()]
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("name", ALL)
def test_zero_grad_and_params_without_grad_are_skipped(name):
    net = model()
    opt = build(name, net.parameters())
    frozen = net[2].bias
    train(net, opt, batches(1))
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    x, y = batches(1)[0]
    ((net(x) - y) ** 2).mean().backward()
    frozen.grad = None
    before = frozen.detach().clone()
    opt.step()
    assert torch.equal(frozen, before)  # (wrappers here sync every 3 steps: none yet)
    base = opt.base_optimizer if hasattr(opt, "base_optimizer") else opt
    assert float(base.state[frozen]["step"]) == 1  # only the first step touched it


@pytest.mark.parametrize("name", BASE)
def test_sparse_gradients_are_refused(name):
    emb = nn.Embedding(5, 3, sparse=True).double()
    opt = build(name, emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


@pytest.mark.parametrize("name", BASE)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_parameters_train_and_stay_finite(name, dtype):
    """State lives in the parameter's dtype (torch.optim's choice; the step count is float64). In float16, an ε
    below its smallest subnormal (6e-8) is 0, so √v + ε can be 0: float16 needs ε >= 1e-4 (docs/reliability.md)."""
    net = model(dtype=dtype)
    eps = {"eps": 1e-4} if dtype == torch.float16 and "eps" in SETTINGS[name] | RULES[name].defaults else {}
    opt = build(name, net.parameters(), **eps)
    train(net, opt, batches(3, dtype=dtype))
    assert all(torch.isfinite(p).all() and p.dtype == dtype for p in net.parameters())


# ---- wrappers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("wrapper", "base"), WRAPPED + [("lookahead", "torch-sgd"), ("scout", "torch-adamw")])
def test_wrappers_share_param_groups_with_any_base(wrapper, base):
    net = model()
    if base.startswith("torch-"):
        inner = (
            torch.optim.SGD(net.parameters(), lr=0.1) if base == "torch-sgd" else torch.optim.AdamW(net.parameters())
        )
    else:
        inner = build(base, net.parameters())
    opt = getattr(optim, RULES[wrapper].cls)(inner, sync_period=2)
    assert opt.param_groups is inner.param_groups
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, dtype=torch.float64))]})
    assert len(inner.param_groups) == 2 and opt.param_groups[1]["sync_period"] == 2
    train(net, opt, batches(4))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    sd = opt.state_dict()
    assert len(sd["state"]) == 5 and all(entry["fast_steps"] == 4 for entry in sd["state"].values())
