"""load_state_dict: torch.optim's contract for all ten optimizers (the eight rules, Lookahead(LAMB), Scout(AdaBelief)).

Whatever torch.optim's own optimizers load, ours load and continue bitwise (torch.optim.AdamW is the control where
torch's behaviour is the claim); what cannot be right is refused at load, naming the problem, and leaves the
optimizer as it was.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import holocron_torch.optim as optim
from tests.registry import BASE, RULES, torch_class
from tests.test_conformance import SETTINGS, batches, model, train

#: the eight rules and the two wrappers, each around a different base
TEN = BASE + ["lookahead:lamb", "scout:adabelief"]
WRAPPERS = [n for n in TEN if ":" in n]


def build(name: str, params, **over):
    """An optimizer by name ("lamb", "lookahead:lamb"); a wrapper syncs every 3 steps."""
    if ":" in name:
        w, b = name.split(":")
        return getattr(optim, RULES[w].cls)(build(b, params, **over), sync_period=3)
    return torch_class(RULES[name])(params, **{**SETTINGS[name], **over})


def two_groups(net: nn.Module, name: str) -> list[dict]:
    """Two groups with different hyperparameters (lr and weight decay)."""
    lr = SETTINGS[name.split(":")[-1]]["lr"]
    return [
        {"params": list(net[0].parameters()), "lr": lr / 2},
        {"params": list(net[2].parameters()), "weight_decay": 0.0},
    ]


def inner(opt):
    """The optimizer that holds the rule's state (a wrapper's base)."""
    return getattr(opt, "base_optimizer", opt)


def rule_part(sd: dict) -> dict:
    """The rule's part of a state dict (a wrapper's is under "base")."""
    return sd["base"] if "base" in sd else sd


def buffers_of(name: str, group: dict) -> tuple[str, ...]:
    return RULES[name.split(":")[-1]].state_fields(group)


def fresh_pair(name: str, steps: int = 3, **over):
    """A model and an optimizer trained ``steps`` steps on two groups."""
    net = model()
    opt = build(name, two_groups(net, name), **over)
    train(net, opt, batches(steps))
    return net, opt


def same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# ---- a step in any form torch.optim loads ------------------------------------------------------------------
STEP_FORMS = {
    "python-int": lambda t: int(t.item()),
    "python-float": lambda t: float(t.item()),
    "float32-0d": lambda t: t.to(torch.float32),
    "float16-0d": lambda t: t.to(torch.float16),
    "bfloat16-0d": lambda t: t.to(torch.bfloat16),
    "int64-1elem": lambda t: t.to(torch.int64).reshape(1),
    "int32-0d": lambda t: t.to(torch.int32),
    "float64-1elem": lambda t: t.reshape(1),
}


def with_steps(sd: dict, form) -> dict:
    out = copy.deepcopy(sd)
    for entry in rule_part(out)["state"].values():
        if isinstance(entry, dict) and "step" in entry:
            entry["step"] = form(entry["step"])
    return out


@pytest.mark.parametrize("form", list(STEP_FORMS))
def test_torch_adamw_loads_every_step_form(form):
    """The control: torch.optim.AdamW loads each form and steps on."""
    net = model()
    opt = torch.optim.AdamW(net.parameters(), lr=0.01)
    train(net, opt, batches(3))
    opt.load_state_dict(with_steps(opt.state_dict(), STEP_FORMS[form]))
    train(net, opt, batches(1))


@pytest.mark.parametrize("name", TEN)
def test_step_in_any_form_torch_loads_continues_bitwise(name):
    """A checkpoint's step as a Python int or float, or a (1-element) tensor of any real dtype: loaded as the
    same count and training continues exactly as without the interruption (two groups with different
    hyperparameters; a wrapper saved mid-period). Before the fix a Python int was taken for a holocron 0.3.0
    checkpoint (its buffers dropped, KeyError at the next step) and a float raised inside step()."""
    data = batches(6)
    ref = model()
    train(ref, build(name, two_groups(ref, name)), data)
    net = model()
    opt = build(name, two_groups(net, name))
    train(net, opt, data[:4])
    saved, weights = copy.deepcopy(opt.state_dict()), copy.deepcopy(net.state_dict())
    for form in STEP_FORMS.values():
        fresh = model(seed=7)
        fresh.load_state_dict(weights)
        fresh_opt = build(name, two_groups(fresh, name))
        fresh_opt.load_state_dict(with_steps(saved, form))
        for st in inner(fresh_opt).state.values():
            assert st["step"].dtype == torch.float64 and st["step"].shape == () and float(st["step"]) == 4
        train(fresh, fresh_opt, data[4:])
        assert same(ref, fresh), form


@pytest.mark.parametrize("name", BASE)
def test_a_step_count_beyond_float32_is_kept_exactly(name):
    """2^24 + 1 (not a float32) as a Python int or a float64 tensor: loaded as is, never through float32."""
    _, opt = fresh_pair(name, steps=1)
    big = 2**24 + 1
    for value in (big, torch.tensor(big, dtype=torch.float64), torch.tensor([big], dtype=torch.int64)):
        sd = with_steps(opt.state_dict(), lambda t, v=value: v)
        opt.load_state_dict(sd)
        assert all(float(st["step"]) == big for st in opt.state.values())


# ---- what torch keeps: param_names, group keys, older dicts -------------------------------------------------
@pytest.mark.parametrize("name", TEN + ["adamw"])
def test_param_names_are_kept_as_torch_keeps_them(name):
    """Built on ``named_parameters()`` the groups and the state dict carry ``param_names``; loading keeps the
    saved names (or the optimizer's own when the checkpoint has none). "adamw" is torch's control."""

    def make(net, named):
        params = net.named_parameters() if named else net.parameters()
        return torch.optim.AdamW(params, lr=0.01) if name == "adamw" else build(name, params)

    names = [n for n, _ in model().named_parameters()]
    for named0 in (True, False):
        for named1 in (True, False):
            net = model()
            opt = make(net, named0)
            train(net, opt, batches(2))
            sd = copy.deepcopy(opt.state_dict())
            assert ("param_names" in rule_part(sd)["param_groups"][0]) is named0
            opt2 = make(net, named1)
            opt2.load_state_dict(sd)
            train(net, opt2, batches(1))
            group = rule_part(opt2.state_dict())["param_groups"][0]
            if named0 or named1:
                assert group["param_names"] == names
            else:
                assert "param_names" not in group


@pytest.mark.parametrize("name", TEN)
def test_group_keys_a_scheduler_or_user_added_are_kept(name):
    """``initial_lr`` (a scheduler's) and any other key a user put in a group survive a load into a fresh
    optimizer, as with torch; a scheduler resumed with ``last_epoch`` then finds them. Before the fix every key
    the fresh optimizer lacked was dropped (KeyError 'initial_lr' when resuming the scheduler)."""
    data = batches(5)
    ref = model()
    ref_opt = build(name, two_groups(ref, name))
    ref_sched = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=2, gamma=0.5)
    for batch in data:
        train(ref, ref_opt, [batch])
        ref_sched.step()

    net = model()
    opt = build(name, two_groups(net, name))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for batch in data[:3]:
        train(net, opt, [batch])
        sched.step()
    opt.param_groups[0]["tag"] = "encoder"
    sd, sched_sd = copy.deepcopy(opt.state_dict()), sched.state_dict()
    fresh = model(seed=3)
    fresh.load_state_dict(net.state_dict())
    fresh_opt = build(name, two_groups(fresh, name))
    fresh_opt.load_state_dict(sd)  # before any scheduler exists, as a framework resuming may do
    assert fresh_opt.param_groups[0]["tag"] == "encoder"
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, step_size=2, gamma=0.5, last_epoch=2)
    fresh_sched.load_state_dict(sched_sd)
    for batch in data[3:]:
        train(fresh, fresh_opt, [batch])
        fresh_sched.step()
    assert same(ref, fresh)


@pytest.mark.parametrize("name", TEN)
def test_an_older_state_dict_without_the_flag_keys_loads(name):
    """Groups saved before a flag existed (maximize, foreach, fused, differentiable, capturable): the flag takes
    the optimizer's current value, and training continues bitwise (torch's test_can_load_older_state_dict)."""
    data = batches(5)
    ref = model()
    train(ref, build(name, two_groups(ref, name)), data)
    net, opt = fresh_pair(name)
    sd = copy.deepcopy(opt.state_dict())
    for group in rule_part(sd)["param_groups"]:
        for flag in ("maximize", "foreach", "fused", "differentiable", "capturable"):
            group.pop(flag, None)
    opt2 = build(name, two_groups(net, name))
    opt2.load_state_dict(sd)
    train(net, opt2, data[3:])
    assert same(ref, net)


@pytest.mark.parametrize("name", TEN)
def test_loading_leaves_the_given_dict_unchanged(name):
    _, opt = fresh_pair(name)
    sd = copy.deepcopy(opt.state_dict())
    sd = with_steps(sd, STEP_FORMS["python-int"])
    before = copy.deepcopy(sd)
    net2 = model(seed=5)
    build(name, two_groups(net2, name)).load_state_dict(sd)
    torch.testing.assert_close(sd, before, rtol=0, atol=0)
    assert all(type(e["step"]) is int for e in rule_part(sd)["state"].values())


# ---- hooks --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TEN)
def test_load_hooks_run_around_the_checks_and_may_put_anything_in_state(name):
    """Pre-hooks run first (so a hook may repair a dict the checks would refuse, or return a new one; ``prepend``
    orders them), post-hooks last (they may put any key and value in ``state``); a state_dict pre-hook's entry
    in ``state`` round-trips through load and the optimizer keeps stepping (torch's hook tests)."""
    net, opt = fresh_pair(name)
    sd = copy.deepcopy(opt.state_dict())
    rule_part(sd)["param_groups"][0]["lr"] = -1.0  # refused unless a pre-hook repairs it

    def set_lr(value):
        def hook(o, d):
            rule_part(d)["param_groups"][0]["lr"] = value

        return hook

    def replace(o, d):
        new = copy.deepcopy(d)
        rule_part(new)["param_groups"][0]["lr"] = 0.003
        return new

    opt.register_load_state_dict_pre_hook(set_lr(0.002))
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.002
    opt.register_load_state_dict_pre_hook(replace, prepend=True)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.002  # the prepended hook ran first; the other edited its result
    opt.register_load_state_dict_post_hook(lambda o: o.state.__setitem__("ran_post_hook", True))
    opt.register_state_dict_pre_hook(lambda o: o.state.__setitem__("test", 1))
    opt.load_state_dict(sd)
    assert opt.state["ran_post_hook"] is True
    saved = opt.state_dict()
    assert saved["state"]["test"] == 1 and saved["state"]["ran_post_hook"] is True
    opt.load_state_dict(saved)
    train(net, opt, batches(2))
    opt.load_state_dict(opt.state_dict())
    train(net, opt, batches(1))


# ---- refused at load, naming the problem, leaving the optimizer as it was ----------------------------------
CORRUPTIONS = {
    # case: (mutate(state dict part, rule name), exception, message)
    "lr-negative": (lambda d, n: d["param_groups"][0].update(lr=-1.0), ValueError, r"param_groups\[0\].*lr"),
    "lr-not-a-number": (lambda d, n: d["param_groups"][1].update(lr="fast"), TypeError, r"param_groups\[1\].*lr"),
    "lr-nan-tensor": (lambda d, n: d["param_groups"][0].update(lr=torch.tensor(float("nan"))), ValueError, "lr"),
    "maximize-not-bool": (lambda d, n: d["param_groups"][0].update(maximize="yes"), TypeError, "maximize"),
    "foreach-and-fused": (lambda d, n: d["param_groups"][0].update(foreach=True, fused=True), ValueError, "fused"),
    "hyper-out-of-range": (
        lambda d, n: d["param_groups"][0].update(
            {"momentum": 1.5} if n == "lars" else {"betas": (0.9, 1.5, *d["param_groups"][0]["betas"][2:])}
        ),
        ValueError,
        r"momentum|betas\[1\]",
    ),
    "unknown-type-group": (lambda d, n: d["param_groups"].__setitem__(0, [1, 2]), TypeError, "param_groups"),
    "missing-buffer": (
        lambda d, n: d["state"][0].pop(buffers_of(n, d["param_groups"][0])[0]),
        ValueError,
        "lacks",
    ),
    "unknown-buffer": (lambda d, n: d["state"][0].update(exp_avg=torch.zeros(3, 4)), ValueError, "unknown.*exp_avg"),
    "missing-step": (lambda d, n: d["state"][0].pop("step"), ValueError, r"lacks \['step'\]"),
    "buffer-shape": (
        lambda d, n: d["state"][0].update({buffers_of(n, d["param_groups"][0])[0]: torch.zeros(7)}),
        ValueError,
        r"shape \(7,\)",
    ),
    "buffer-not-tensor": (
        lambda d, n: d["state"][0].update({buffers_of(n, d["param_groups"][0])[0]: [0.0] * 12}),
        TypeError,
        "must be a tensor",
    ),
    "buffer-integer": (
        lambda d, n: d["state"][0].update(
            {buffers_of(n, d["param_groups"][0])[0]: torch.zeros(3, 4, dtype=torch.long)}
        ),
        TypeError,
        "floating-point",
    ),
    "step-negative": (lambda d, n: d["state"][0].update(step=-1), ValueError, "whole number >= 0"),
    "step-fraction": (lambda d, n: d["state"][0].update(step=torch.tensor(2.5)), ValueError, "whole number"),
    "step-nan": (lambda d, n: d["state"][0].update(step=float("nan")), ValueError, "whole number"),
    "step-string": (lambda d, n: d["state"][0].update(step="3"), TypeError, "step"),
    "step-bool": (lambda d, n: d["state"][0].update(step=True), TypeError, "step"),
    "step-two-elements": (lambda d, n: d["state"][0].update(step=torch.ones(2)), ValueError, "one-element"),
    "step-complex": (lambda d, n: d["state"][0].update(step=torch.tensor(3 + 0j)), TypeError, "real"),
    "state-entry-not-dict": (lambda d, n: d["state"].__setitem__(0, 3.0), TypeError, "must be a dict"),
    "group-count": (
        lambda d, n: d["param_groups"].append(copy.deepcopy(d["param_groups"][1])),
        ValueError,
        "number of parameter groups",
    ),
    "group-size": (lambda d, n: d["param_groups"][1]["params"].pop(), ValueError, "size"),
    "no-state": (lambda d, n: d.pop("state"), ValueError, "'state'"),
    "repeated-id": (
        lambda d, n: d["param_groups"][1]["params"].__setitem__(0, d["param_groups"][0]["params"][0]),
        ValueError,
        "more than once",
    ),
}


@pytest.mark.parametrize("name", TEN)
def test_what_cannot_be_right_is_refused_at_load_and_changes_nothing(name):
    """Each corruption of a valid state dict (the table above) is refused by load_state_dict with its exception
    and a message naming the problem, and the optimizer keeps its groups and state and steps on. Every case is
    tried; the failures are reported together."""
    _, opt = fresh_pair(name)
    valid = copy.deepcopy(opt.state_dict())
    net = model(seed=1)
    target = build(name, two_groups(net, name))
    train(net, target, batches(1))
    before = copy.deepcopy(target.state_dict())
    failures = []
    for case, (mutate, exc, text) in CORRUPTIONS.items():
        sd = copy.deepcopy(valid)
        mutate(rule_part(sd), name.split(":")[-1])
        try:
            with pytest.raises(exc, match=text):
                target.load_state_dict(sd)
            torch.testing.assert_close(target.state_dict(), before, rtol=0, atol=0)
        except (AssertionError, pytest.fail.Exception) as e:
            failures.append(f"{case}: {str(e).splitlines()[0:3]}")
    assert not failures, "\n".join(failures)
    train(net, target, batches(1))  # and it still steps


@pytest.mark.parametrize("name", BASE)
def test_a_wrappers_state_dict_is_refused_by_a_bare_optimizer(name):
    net = model()
    wrapped = optim.Lookahead(build(name, net.parameters()))
    train(net, wrapped, batches(2))
    bare = build(name, model().parameters())
    with pytest.raises(ValueError, match=r"a wrapper's state dict \(Lookahead/Scout"):
        bare.load_state_dict(wrapped.state_dict())
    assert not bare.state


@pytest.mark.parametrize("name", WRAPPERS)
def test_a_bare_state_dict_is_refused_by_a_wrapper(name):
    """The reverse: a rule's own state dict into a wrapper is refused with a ValueError or TypeError that says so
    (not a KeyError from inside)."""
    _, opt = fresh_pair(name)
    _, bare = fresh_pair(name.split(":")[1])
    bare_sd = copy.deepcopy(bare.state_dict())
    with pytest.raises((ValueError, TypeError), match=r"base|wrapper|Lookahead|Scout"):
        opt.load_state_dict(bare_sd)


@pytest.mark.parametrize("name", BASE)
def test_reordered_parameters_are_refused_by_shape(name):
    """A checkpoint is matched to parameters by position (torch's rule, names do not matter): parameters in
    another order get buffers of another shape, refused at load instead of failing in step()."""
    _, opt = fresh_pair(name)
    sd = copy.deepcopy(opt.state_dict())
    params = list(model().parameters())
    with pytest.raises(ValueError, match="shape"):
        build(name, params[::-1]).load_state_dict(
            {"state": sd["state"], "param_groups": [{**sd["param_groups"][0], "params": list(range(4))}]}
        )


# ---- dtype and device: cast as torch casts ------------------------------------------------------------------
@pytest.mark.parametrize("name", TEN)
def test_state_loaded_into_other_dtype_and_device_is_cast_like_torchs(name, device):
    """float64 state into float32 parameters (on the test's device): buffers take the parameter's dtype and device
    (what torch.optim does), the step stays an exact float64 count, and training continues."""
    _, opt = fresh_pair(name)
    sd = copy.deepcopy(opt.state_dict())
    net32 = model(dtype=torch.float32, device=device)
    opt32 = build(name, two_groups(net32, name))
    opt32.load_state_dict(sd)
    for p in net32.parameters():
        st = inner(opt32).state[p]
        assert st["step"].dtype == torch.float64 and float(st["step"]) == 3 and st["step"].device == p.device
        for b in buffers_of(name, opt32.param_groups[0]):
            assert st[b].dtype == torch.float32 and st[b].device == p.device
    train(net32, opt32, batches(2, dtype=torch.float32, device=device))
    assert all(torch.isfinite(p).all() for p in net32.parameters())


# ---- holocron 0.3.0 checkpoints: recognised by their buffer names ------------------------------------------
def test_holocron_names_with_a_tensor_step_are_still_holocrons():
    """Recognition is by buffer names, not by the step's type: holocron's LAMB layout with a tensor step
    translates the same as with its Python-int step."""
    ckpt = torch.load("tests/fixtures/holocron-0.3.0-lamb.pt", weights_only=False)
    results = []
    for as_tensor in (False, True):
        sd = copy.deepcopy(ckpt["opt"])
        if as_tensor:
            for entry in sd["state"].values():
                entry["step"] = torch.tensor(float(entry["step"]))
        net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
        net.load_state_dict(ckpt["model"])
        opt = optim.LAMB(net.parameters(), lr=0.01)
        opt.load_state_dict(sd)
        assert set(opt.state[net[0].weight]) == {"step", "m", "v"}
        train(net, opt, ckpt["batches"][3:])
        results.append([p.detach().clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))
