"""torch.optim's Optimizer contract, property by property, for all ten optimizers (the eight rules,
Lookahead(LAMB), Scout(AdaBelief)).

The properties are those torch.optim documents and those PyTorch's own optimizer suite (test/test_optim.py over
torch/testing/_internal/common_optimizers.py) checks of every optimizer; the tests are written here from that list.
torch.optim.AdamW is the control wherever torch's behaviour is the claim. What cannot hold for ours is refused
loudly and explained in docs/reliability.md ("torch.optim contract").
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from tests.registry import BASE, RULES, torch_class
from tests.test_conformance import SETTINGS, batches, model, train
from tests.test_state_dict import TEN, build, inner, rule_part, same, two_groups

CONTROL = ["adamw"]


def make(name: str, params, **over):
    """One of the ten, or torch's AdamW (the control)."""
    if name == "adamw":
        return torch.optim.AdamW(params, **{"lr": 0.01, **over})
    return build(name, params, **over)


def quadratic(params, x):
    """A loss of (weight, bias) as torch's suite uses: ‖W x + b‖²."""
    w, b = params
    return (w.mv(x) + b).pow(2).sum()


def wb(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = nn.Parameter(torch.randn(10, 5, generator=g, dtype=dtype))
    b = nn.Parameter(torch.randn(10, generator=g, dtype=dtype))
    x = torch.randn(5, generator=g, dtype=dtype)
    return [w, b], x


# ---- construction: defaults, repr, param groups --------------------------------------------------------------
@pytest.mark.parametrize("name", TEN + CONTROL)
def test_defaults_hold_every_group_key(name):
    """``defaults`` holds every hyperparameter a group holds (what add_param_group fills and what schedulers such
    as OneCycleLR and CyclicLR read); a group added later gets the same keys; a wrapper's defaults include its
    base optimizer's."""
    net = model()
    opt = make(name, net[0].parameters())
    keys = set(opt.param_groups[0]) - {"params", "param_names"}
    assert keys <= set(opt.defaults), keys - set(opt.defaults)
    opt.add_param_group({"params": net[2].parameters()})
    assert set(opt.param_groups[1]) == set(opt.param_groups[0])
    if inner(opt) is not opt:
        assert set(inner(opt).defaults) <= set(opt.defaults)
        assert all(opt.defaults[k] == v for k, v in inner(opt).defaults.items())


@pytest.mark.parametrize("name", TEN)
def test_repr_names_the_class_and_every_group_hyperparameter(name):
    net = model()
    opt = make(name, [{"params": net[0].parameters()}, {"params": net[2].parameters(), "lr": 0.5}])
    text = repr(opt)
    assert type(inner(opt)).__name__ in text and "Parameter Group 1" in text and "lr: 0.5" in text
    for h in RULES[name.split(":")[-1]].hypers:
        assert f"{h.name}: " in text, h.name


# ---- copies: deepcopy, pickle, state_dict ------------------------------------------------------------------
@pytest.mark.parametrize("name", TEN)
def test_deepcopy_and_pickle_copy_everything_and_continue_identically(name):
    """deepcopy and pickle (of the model and the optimizer together, so the copy's parameters are its own)
    keep every public attribute, and the copies train on exactly as the original."""
    net = model()
    opt = make(name, two_groups(net, name))
    train(net, opt, batches(4))
    data = batches(3)
    copies = [copy.deepcopy((net, opt)), pickle.loads(pickle.dumps((net, opt)))]
    public = {k for k in vars(opt) if not k.startswith("_")}
    train(net, opt, data)
    for net_c, opt_c in copies:
        assert {k for k in vars(opt_c) if not k.startswith("_")} == public
        train(net_c, opt_c, data)
        assert same(net, net_c)


def _equal(a, b) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", TEN)
def test_state_dict_is_deterministic_for_equal_parameters(name):
    """torch's test_state_dict_deterministic: an optimizer loaded from another's state dict, on equal (not
    identical) parameters, steps identically and writes an equal state dict, also for repeated groups."""
    net = model()
    opt = make(name, two_groups(net, name))
    train(net, opt, batches(4))
    net_c = copy.deepcopy(net)
    opt_c = make(name, two_groups(net_c, name))
    opt_c.load_state_dict(copy.deepcopy(opt.state_dict()))
    for batch in batches(4):
        train(net, opt, [batch])
        train(net_c, opt_c, [batch])
        assert same(net, net_c)
    _equal(opt.state_dict(), opt_c.state_dict())
    opt_c.param_groups.extend(opt_c.param_groups)
    assert rule_part(opt_c.state_dict())["param_groups"][-1] == rule_part(opt.state_dict())["param_groups"][-1]


@pytest.mark.parametrize("name", TEN + CONTROL)
def test_state_dict_survives_torch_save_with_weights_only(name):
    net = model()
    opt = make(name, two_groups(net, name) if name != "adamw" else net.parameters())
    train(net, opt, batches(3))
    sd = opt.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    _equal(torch.load(buf, weights_only=True), sd)


@pytest.mark.parametrize("name", TEN + CONTROL)
def test_state_dict_refers_to_the_live_state_like_torchs_and_a_deepcopy_is_a_snapshot(name):
    """state_dict() returns the live buffers (no copy, as torch.optim: checkpointing costs no memory and
    torch.distributed.checkpoint loads into them in place); a deepcopy of it is a snapshot later steps leave
    alone; loading it back restores that point exactly."""
    net = model()
    opt = make(name, net.parameters())
    train(net, opt, batches(2))
    p = next(net.parameters())
    live = rule_part(opt.state_dict())["state"][0]
    base_state = inner(opt).state[p]
    name_ = "exp_avg" if name == "adamw" else RULES[name.split(":")[-1]].state[0]
    assert live[name_] is base_state[name_]
    snap, weights = copy.deepcopy(opt.state_dict()), copy.deepcopy(net.state_dict())
    data = batches(3)
    train(net, opt, data)
    after = [q.detach().clone() for q in net.parameters()]
    assert not torch.equal(rule_part(snap)["state"][0][name_], base_state[name_])
    net.load_state_dict(weights)
    opt.load_state_dict(snap)
    train(net, opt, data)
    assert all(torch.equal(a, q) for a, q in zip(after, net.parameters()))


# ---- step: grads absent or zero, zero_grad, closures, hooks ------------------------------------------------
@pytest.mark.parametrize("name", TEN)
def test_step_without_grads_changes_nothing_and_makes_no_state(name):
    params = [torch.randn(2, 3) for _ in range(2)]  # requires_grad False: never a grad
    before = [p.clone() for p in params]
    opt = make(name, params, weight_decay=0.1)
    assert torch.equal(opt.step(lambda: torch.tensor([1.0])), torch.tensor([1.0]))
    for _ in range(3):  # a wrapper's sync period passes too
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    assert not any(isinstance(k, torch.Tensor) and v for k, v in inner(opt).state.items())


@pytest.mark.parametrize("name", TEN)
def test_step_with_zero_grads_and_no_weight_decay_changes_nothing(name):
    param = torch.randn(5, 1, requires_grad=True)
    before = param.detach().clone()
    opt = make(name, [param], weight_decay=0.0)
    for _ in range(4):
        param.grad = torch.zeros_like(param)
        opt.step()
    assert torch.equal(param, before)


@pytest.mark.parametrize("name", TEN)
def test_zero_grad_sets_to_none_by_default_and_zeroes_on_request(name):
    net = model()
    opt = make(name, net.parameters())
    train(net, opt, batches(1))
    ((net(batches(1)[0][0])) ** 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("name", TEN)
def test_a_closure_that_calls_backward_is_run_once_with_grad_enabled_and_its_loss_returned(name):
    """step(closure) equals running the closure then step(): the closure runs once, with grad mode on (step is
    no_grad), its loss is returned."""
    (params, x), (params_c, x_c) = wb(torch.float64), wb(torch.float64)
    opt, opt_c = make(name, params), make(name, params_c)
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = quadratic(params, x)
        loss.backward()
        return loss

    for _ in range(4):
        loss = opt.step(closure)
        opt_c.zero_grad()
        loss_c = quadratic(params_c, x_c)
        loss_c.backward()
        opt_c.step()
        assert torch.equal(loss, loss_c)
    assert calls == [True] * 4
    assert all(torch.equal(a, b) for a, b in zip(params, params_c))


@pytest.mark.parametrize("name", TEN)
def test_step_hooks_run_once_per_step_in_torchs_order_and_are_removable(name):
    """Global pre-hook, the optimizer's pre-hook, its post-hook, global post-hook: once each per step() (the
    same sequence as torch's SGD beside it), and none after their handles are removed."""
    params = [torch.tensor([1.0, 1.0])]
    opt, sgd = make(name, params), torch.optim.SGD(params)
    seen: list[int] = []
    handles = [
        register_optimizer_step_pre_hook(lambda *a: seen.append(0)),
        register_optimizer_step_post_hook(lambda *a: seen.append(5)),
    ]
    for o in (opt, sgd):
        handles += [o.register_step_pre_hook(lambda *a: seen.append(1))]
        handles += [o.register_step_post_hook(lambda *a: seen.append(2))]
    try:
        opt.step()
        sgd.step()
        opt.step()
    finally:
        for h in handles:
            h.remove()
    opt.step()
    sgd.step()
    assert seen == [0, 1, 2, 5] * 3


# ---- the update: direction, groups, lr as a tensor, layouts -------------------------------------------------
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("foreach", [None, False, True])
@pytest.mark.parametrize("name", TEN)
def test_twenty_steps_go_the_right_way_and_foreach_is_the_loop(name, foreach, maximize):
    """torch's test_forloop_goes_right_direction and test_foreach_matches_forloop: 20 steps lower ‖W x + b‖²
    (raise it with maximize); the foreach path gives the per-tensor loop's numbers exactly."""
    runs = []
    for fe in {foreach, False}:
        params, x = wb()
        opt = make(name, params, foreach=fe, maximize=maximize)

        def closure(opt=opt, params=params, x=x):
            opt.zero_grad()
            loss = quadratic(params, x)
            loss.backward()
            return loss

        start = closure().item()
        for _ in range(20):
            opt.step(closure)
        end = closure().item()
        assert end > start if maximize else end < start
        runs.append(params)
    assert all(torch.equal(a, b) for a, b in zip(*runs)) if len(runs) == 2 else True


@pytest.mark.parametrize("name", TEN)
def test_each_group_keeps_its_own_hyperparameters(name):
    """torch's test_param_groups_lr / _weight_decay: a group with lr = 0 never moves while the other trains; the
    group dicts hold each group's values."""
    (w, b), x = wb()
    still = nn.Parameter(torch.randn(2))
    before = still.detach().clone()
    opt = make(name, [{"params": [w, b], "weight_decay": 0.0}, {"params": [still], "lr": 0.0}])
    start = quadratic((w, b), x).item()
    for _ in range(20):
        opt.zero_grad()
        quadratic((w, b), x).backward()
        still.grad = torch.rand_like(still)
        opt.step()
    assert quadratic((w, b), x).item() < start
    assert torch.equal(still, before)
    assert [g["lr"] for g in opt.param_groups] == [SETTINGS[name.split(":")[-1]]["lr"], 0.0]


@pytest.mark.parametrize("name", TEN)
def test_a_tensor_lr_gives_the_float_lrs_numbers(name):
    """torch's test_tensor_lr: lr as a 0-d tensor is the same optimizer as lr as a float (2^-7: one value in
    every dtype, so the comparison is exact)."""
    runs = []
    for lr in (2.0**-7, torch.tensor(2.0**-7)):
        (w, b), x = wb()
        opt = make(name, [w, b], lr=lr)
        for _ in range(5):
            opt.zero_grad()
            quadratic((w, b), x).backward()
            opt.step()
        runs.append((w, b))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


#: the rules whose update reduces a whole tensor (norms, sums: trust ratios, TAdam's weight, AdamP's cosine,
#: Scout's coherence); the others are elementwise
REDUCING = {"lars", "lamb", "ralars", "tadam", "adamp", "lookahead:lamb", "scout:adabelief"}


@pytest.mark.parametrize("name", TEN)
def test_non_contiguous_parameters_get_the_contiguous_numbers(name):
    """A non-contiguous parameter trains as its contiguous copy: bitwise for the elementwise rules. A reduction
    over a non-contiguous tensor runs in torch's order for that layout (torch.linalg.vector_norm of a strided
    view differs from its contiguous copy's in the last bit for ~40% of random 6x4 float64 tensors), so the
    rules that reduce agree to that rounding: 1e-13 relative after 4 steps (docs/reliability.md)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, 2, generator=g, dtype=torch.float64)[..., 0].requires_grad_()
    wc = w.detach().clone().requires_grad_()
    assert not w.is_contiguous()
    opt, opt_c = make(name, [w]), make(name, [wc])
    for _ in range(4):
        grad = torch.randn(6, 4, generator=g, dtype=torch.float64)
        w.grad, wc.grad = grad.clone(), grad.clone()
        opt.step()
        opt_c.step()
    if name in REDUCING:
        torch.testing.assert_close(w, wc, rtol=1e-13, atol=0)
    else:
        assert torch.equal(w, wc)


@pytest.mark.parametrize("name", TEN)
def test_state_is_made_for_exactly_the_parameters_that_had_a_grad(name):
    net = model()
    opt = make(name, net.parameters())
    frozen = net[0].weight
    for x, y in batches(2):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        frozen.grad = None
        opt.step()
    made = {p for p, st in inner(opt).state.items() if isinstance(p, torch.Tensor) and st}
    assert made == {p for p in net.parameters() if p is not frozen}


@pytest.mark.parametrize("name", TEN)
def test_add_param_group_after_a_load_fills_defaults_and_trains(name):
    net = model()
    opt = make(name, net[0].parameters())
    train(net, opt, batches(2))
    opt2 = make(name, net[0].parameters())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    opt2.add_param_group({"params": net[2].parameters()})
    assert set(opt2.param_groups[1]) == set(opt2.param_groups[0])
    before = [p.detach().clone() for p in net[2].parameters()]
    train(net, opt2, batches(2))
    assert all(not torch.equal(a, p) for a, p in zip(before, net[2].parameters()))


# ---- what ours refuse instead of doing wrong (docs/reliability.md, "torch.optim contract") ------------------
@pytest.mark.parametrize("name", TEN)
def test_complex_parameters_are_refused_at_construction(name):
    """torch's optimizers train complex parameters as their real view; ours refuse them (a rule's norms and
    trust ratios are defined on real tensors), loudly."""
    with pytest.raises(ValueError, match="complex"):
        make(name, [torch.randn(3, 2, dtype=torch.complex64, requires_grad=True)])


@pytest.mark.parametrize("flag", ["differentiable", "capturable"])
@pytest.mark.parametrize("name", BASE)
def test_differentiable_and_capturable_are_refused_not_ignored(name, flag):
    """torch's differentiable=True (autograd through step) and capturable=True (CUDA-graph capture) are not
    implemented: asking for either is an error, never silently ignored."""
    with pytest.raises((TypeError, ValueError), match=flag):
        torch_class(RULES[name])(model().parameters(), **{flag: True})
