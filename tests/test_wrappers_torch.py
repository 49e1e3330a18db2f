"""Lookahead and Scout as torch optimizers in their own right: ``defaults`` (what LR schedulers read), state made at
the first step, torch's state-dict format (torch.save with weights_only=True, torch.distributed.checkpoint's
get_state_dict / set_state_dict; under FSDP2 in tests/test_distributed.py), loads refused at load with a named
reason, every entry point that changes param groups, and what frameworks do with ``optimizer.state``.

(The step-for-step equality with the reference is tests/test_step_for_step.py; the conventions shared with the
rules, tests/test_conformance.py.) About 5 s on one core.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import MutableMapping
from pathlib import Path

import pytest
import torch
from torch import nn

import holocron_torch.optim as optim
from tests.test_conformance import batches, build, model, train

WRAPPERS = [optim.Lookahead, optim.Scout]
FIXTURES = Path(__file__).parent / "fixtures"


def wrap(cls, net: nn.Module, base: str = "lamb", **kw) -> optim.Lookahead:
    inner = {
        "torch-adamw": lambda: torch.optim.AdamW(net.parameters(), lr=0.01),
        "torch-sgd": lambda: torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
    }.get(base, lambda: build(base, net.parameters()))()
    return cls(inner, **{"sync_period": 3, **kw})


def same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ---- defaults and schedulers ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", WRAPPERS)
def test_defaults_are_the_bases_plus_the_wrappers_own(cls):
    net = model()
    opt = wrap(cls, net, sync_rate=0.8)
    base = opt.base_optimizer
    assert opt.defaults == {**base.defaults, "sync_rate": 0.8, "sync_period": 3}
    assert "sync_rate" not in base.defaults  # the base's own stay its own
    with pytest.raises(ValueError, match="sync_rate"):
        cls(build("lamb", model().parameters()), sync_rate=1.5)


@pytest.mark.parametrize("cls", WRAPPERS)
@pytest.mark.parametrize("base", ["lamb", "torch-sgd"])
def test_one_cycle_and_cyclic_lr_cycle_the_bases_lr_and_momentum(cls, base):
    """The README's OneCycleLR (cycle_momentum on, its default) and CyclicLR move lr and β1 (betas) or momentum
    of the base optimizer's groups."""
    net = model()
    opt = wrap(cls, net, base=base)
    key = "betas" if "betas" in opt.defaults else "momentum"
    first = (lambda g: g["betas"][0]) if key == "betas" else (lambda g: g["momentum"])
    for sched in (
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=1000),
        torch.optim.lr_scheduler.CyclicLR(opt, base_lr=1e-3, max_lr=1e-2, step_size_up=4),
    ):
        seen = []
        for batch in batches(3):
            train(net, opt, [batch])
            sched.step()
            group = opt.base_optimizer.param_groups[0]
            seen.append((group["lr"], first(group)))
        assert len({lr for lr, _ in seen}) == 3 and len({m for _, m in seen}) == 3, seen
    assert all(torch.isfinite(p).all() for p in net.parameters())


# ---- the slow weights are made at the first step ----------------------------------------------------------
@pytest.mark.parametrize("cls", WRAPPERS)
def test_model_loaded_or_cast_after_building_the_wrapper_is_respected(cls):
    data = batches(4, dtype=torch.float32)
    ref = model(seed=7).float()
    ref_opt = wrap(cls, ref)  # built after the weights are in place
    train(ref, ref_opt, data)

    net = model(seed=0)  # float64, other weights
    opt = wrap(cls, net)
    net.load_state_dict(model(seed=7).state_dict())
    net.float()
    train(net, opt, data)  # syncs at step 3: φ_0 is the loaded, cast θ
    assert same(net, ref)
    assert all(opt.state[p]["phi"].dtype == torch.float32 for p in net.parameters())


@pytest.mark.parametrize("cls", WRAPPERS)
def test_no_state_before_the_first_step(cls):
    net = model()
    opt = wrap(cls, net)
    assert not opt.state and len(opt.state) == 0
    sd = opt.state_dict()
    assert sd["state"] == {} and sd["param_groups"][0]["sync_period"] == 3
    fresh = model()
    fresh_opt = wrap(cls, fresh)
    fresh_opt.load_state_dict(roundtrip(sd))  # a checkpoint from before training loads, and trains the same
    train(net, opt, batches(4)), train(fresh, fresh_opt, batches(4))
    assert same(net, fresh)


# ---- state: torch's format ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", WRAPPERS)
@pytest.mark.parametrize("base", ["lamb", "torch-adamw", "torch-sgd"])
def test_state_dict_is_torchs_format_and_resumes_bitwise(cls, base):
    data = batches(7)
    ref = model()
    train(ref, wrap(cls, ref, base=base), data)

    net = model()
    opt = wrap(cls, net, base=base)
    train(net, opt, data[:4])
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"} and set(sd["state"]) == {0, 1, 2, 3}
    own = {"phi", "fast_steps"} | ({"history"} if cls is optim.Scout else set())
    base_keys = set(opt.base_optimizer.state_dict()["state"][0])
    assert all(set(entry) == base_keys | own and entry["fast_steps"] == 4 for entry in sd["state"].values())
    fresh = model(seed=3)
    fresh.load_state_dict(net.state_dict())
    fresh_opt = wrap(cls, fresh, base=base)
    fresh_opt.load_state_dict(roundtrip(sd))
    train(fresh, fresh_opt, data[4:])
    assert same(fresh, ref)


@pytest.mark.parametrize("cls", WRAPPERS)
@pytest.mark.parametrize("flatten", [False, True])
def test_distributed_checkpoint_state_dict_api_takes_the_wrapper(cls, flatten):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    options = StateDictOptions(flatten_optimizer_state_dict=flatten)
    data = batches(7)
    ref = model()
    train(ref, wrap(cls, ref), data)
    net = model()
    opt = wrap(cls, net)
    train(net, opt, data[:4])
    msd, osd = get_state_dict(net, opt, options=options)
    osd = roundtrip(osd)
    fresh = model(seed=3)
    fresh_opt = wrap(cls, fresh)
    set_state_dict(fresh, fresh_opt, model_state_dict=msd, optim_state_dict=osd, options=options)
    train(fresh, fresh_opt, data[4:])
    assert same(fresh, ref)


@pytest.mark.parametrize("cls", WRAPPERS)
def test_checkpoint_of_the_previous_format_still_loads(cls):
    """tests/fixtures/wrapper-c126be6-*.pt: saved by wrapper.py at c126be6 (the base's state under "base", one
    "fast_steps" count in ``state``) after 4 of these 7 steps, around LAMB with sync_period 3. Made with that
    commit's wrapper.py (``git show c126be6:holocron_torch/optim/wrapper.py``) as ``W(build("lamb", net.parameters()),
    sync_period=3)``, ``net = model()``, ``train(net, opt, batches(7)[:4])``, then
    ``torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, path)``."""
    ckpt = torch.load(FIXTURES / f"wrapper-c126be6-{cls.__name__.lower()}.pt", weights_only=True)
    assert "base" in ckpt["opt"] and ckpt["opt"]["state"]["fast_steps"] == 4
    data = batches(7)
    ref = model()
    train(ref, wrap(cls, ref), data)
    net = model(seed=3)
    net.load_state_dict(ckpt["model"])
    opt = wrap(cls, net)
    opt.load_state_dict(ckpt["opt"])
    train(net, opt, data[4:])
    assert same(net, ref)


# ---- load: refused at load, with the reason ------------------------------------------------------------------
def trained(cls, base: str = "lamb"):
    net = model()
    opt = wrap(cls, net, base=base)
    train(net, opt, batches(2))
    return net, opt


def edited(sd: dict, group: dict | None = None, entry: dict | None = None, drop: tuple = ()) -> dict:
    out = copy.deepcopy(sd)
    out["param_groups"][0].update(group or {})
    for i in out["state"]:
        out["state"][i].update(entry or {})
        for k in drop:
            out["state"][i].pop(k, None)
    return out


@pytest.mark.parametrize("cls", WRAPPERS)
def test_bad_loads_are_refused_at_load_and_change_nothing(cls):
    _, opt = trained(cls)
    sd = opt.state_dict()
    other_cls = optim.Lookahead if cls is optim.Scout else optim.Scout
    other = trained(other_cls)[1].state_dict()
    bare_net = model()
    bare = build("lamb", bare_net.parameters())
    train(bare_net, bare, batches(2))
    bad = [
        (bare.state_dict(), ValueError, "no \\['sync_rate', 'sync_period'\\].*bare optimizer"),
        (edited(sd, group={"sync_rate": 0.0}), ValueError, "param group 0.*sync_rate"),
        (edited(sd, group={"sync_period": 0}), ValueError, "param group 0.*sync_period"),
        (edited(sd, group={"sync_period": 2.0}), TypeError, "sync_period"),
        (edited(sd, entry={"fast_steps": -1}), ValueError, "fast_steps must be a non-negative int"),
        (edited(sd, entry={"fast_steps": 2.0}), TypeError, "fast_steps must be a non-negative int"),
        (edited(sd, entry={"fast_steps": True}), TypeError, "fast_steps"),
        (edited(sd, entry={"phi": torch.zeros(3)}), ValueError, "phi must be a floating-point tensor of shape"),
        (edited(sd, drop=("phi",)), ValueError, "not \\['phi'\\]"),
        (other, ValueError, "history"),
    ]
    before = roundtrip(opt.state_dict())
    for state_dict, exc, text in bad:
        with pytest.raises(exc, match=text):
            opt.load_state_dict(state_dict)
        now = opt.state_dict()
        assert now["param_groups"] == before["param_groups"]
        for i, entry in before["state"].items():
            assert now["state"][i].keys() == entry.keys()
            assert all(torch.equal(now["state"][i][k], v) if torch.is_tensor(v) else now["state"][i][k] == v
                       for k, v in entry.items())  # fmt: skip


@pytest.mark.parametrize("cls", WRAPPERS)
def test_load_hooks_run_and_a_pre_hook_may_replace_the_dict(cls):
    _, opt = trained(cls)
    seen = []
    opt.register_state_dict_post_hook(lambda o, sd: seen.append("sd-post") or {**sd, "extra": 1})
    opt.register_load_state_dict_pre_hook(
        lambda o, sd: seen.append("load-pre") or {k: v for k, v in sd.items() if k != "extra"}
    )
    opt.register_load_state_dict_post_hook(lambda o: seen.append("load-post"))
    sd = opt.state_dict()
    assert sd["extra"] == 1
    opt.load_state_dict(sd)
    assert seen == ["sd-post", "load-pre", "load-post"]


# ---- param groups: every entry point leaves a consistent optimizer ----------------------------------------
@pytest.mark.parametrize("cls", WRAPPERS)
def test_refused_groups_leave_base_and_wrapper_unchanged(cls):
    _, opt = trained(cls)
    extra = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    for group, text in [({"sync_rate": 2.0}, "sync_rate"), ({"sync_period": 0}, "sync_period"), ({"lr": -1.0}, "lr")]:
        with pytest.raises(ValueError, match=text):
            opt.add_param_group({"params": [extra], **group})
        assert len(opt.param_groups) == len(opt.base_optimizer.param_groups) == 1
    opt.add_param_group({"params": [extra], "sync_rate": 0.9})
    assert opt.param_groups[1]["sync_rate"] == 0.9 and opt.param_groups[1]["sync_period"] == 3


@pytest.mark.parametrize("cls", WRAPPERS)
def test_a_group_added_to_the_base_directly_is_adopted_at_the_next_step(cls):
    net, opt = trained(cls)
    extra = nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt.base_optimizer.add_param_group({"params": [extra]})
    assert opt.state_dict()["param_groups"][1]["sync_period"] == 3  # the wrapper's defaults, filled in
    before = extra.detach().clone()
    for x, y in batches(3):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        extra.grad = torch.ones_like(extra)
        opt.step()
    # φ_0 = θ at its first step, and it syncs after 3 fast steps of its own (the others after 5)
    assert opt.state[extra]["fast_steps"] == 3 and opt.state[net[0].weight]["fast_steps"] == 5
    assert torch.equal(opt.state[extra]["phi"], extra) and not torch.equal(extra, before)
    bad = nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt.base_optimizer.add_param_group({"params": [bad], "sync_rate": 5.0})
    snapshot = [p.detach().clone() for p in net.parameters()]
    steps = float(opt.base_optimizer.state[net[0].weight]["step"])
    with pytest.raises(ValueError, match=r"param group 2.*sync_rate"):
        train(net, opt, batches(1))
    assert all(torch.equal(a, b) for a, b in zip(snapshot, net.parameters()))
    assert float(opt.base_optimizer.state[net[0].weight]["step"]) == steps  # the base did not step either


@pytest.mark.parametrize("cls", WRAPPERS)
def test_param_groups_can_be_replaced(cls):
    net = model()
    opt = wrap(cls, net)
    opt.param_groups = [{**opt.param_groups[0], "params": list(net[0].parameters())}]
    assert opt.base_optimizer.param_groups is opt.param_groups
    train(net, opt, batches(3))
    assert set(opt.state) == set(net[0].parameters())


def test_scout_refuses_a_sync_period_changed_during_training():
    _, opt = trained(optim.Scout)
    opt.param_groups[0]["sync_period"] = 4
    with pytest.raises(ValueError, match="cannot change during training"):
        opt.step()


@pytest.mark.parametrize("cls", WRAPPERS)
def test_a_wrapper_inside_a_wrapper_is_refused(cls):
    with pytest.raises(TypeError, match="wrapper inside a wrapper"):
        cls(optim.Lookahead(build("lamb", model().parameters())))


# ---- optimizer.state as frameworks use it ------------------------------------------------------------------
@pytest.mark.parametrize("cls", WRAPPERS)
def test_state_is_one_mapping_per_parameter_with_both_optimizers_entries(cls):
    net, opt = trained(cls)
    assert set(opt.state) == set(net.parameters())
    for p, st in opt.state.items():
        assert isinstance(p, torch.Tensor) and "m" in st and "phi" in st and st["fast_steps"] == 2
    # a framework moving the state to a device (Lightning's _optimizer_to_device takes each value that is a
    # MutableMapping and replaces its tensors, other values pass through): every write reaches its owner
    moved = {}
    for st in opt.state.values():
        assert isinstance(st, MutableMapping)
        for key, val in st.items():
            if torch.is_tensor(val):
                st[key] = moved[id(val)] = val.clone()
    base = opt.base_optimizer.state
    wrapper_own = [st[k] for st in opt._slow.values() for k in st if k != "fast_steps"]
    assert all(id(v) in map(id, moved.values()) for st in base.values() for v in st.values())
    assert all(id(v) in map(id, moved.values()) for v in wrapper_own)
    train(net, opt, batches(1))


@pytest.mark.parametrize("cls", WRAPPERS)
def test_deepcopy_and_pickle_continue_like_the_original(cls):
    net, opt = trained(cls)
    for clone_net, clone_opt in (copy.deepcopy((net, opt)), pickle.loads(pickle.dumps((net, opt)))):
        train(clone_net, clone_opt, batches(3))
        assert clone_opt.state[clone_net[0].weight]["fast_steps"] == 5
        ref_net, ref_opt = copy.deepcopy((net, opt))
        train(ref_net, ref_opt, batches(3))
        assert same(clone_net, ref_net)
    assert opt.state[net[0].weight]["fast_steps"] == 2  # the original untouched


@pytest.mark.parametrize("cls", WRAPPERS)
def test_repr_and_zero_grad(cls):
    net, opt = trained(cls)
    text = repr(opt)
    assert text.startswith(f"{cls.__name__}(LAMB) (") and "sync_period: 3" in text and "lr: 0.01" in text
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("cls", WRAPPERS)
def test_global_step_hooks_run_once_per_step_and_the_bases_own_hooks_run(cls):
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    net = model()
    opt = wrap(cls, net)
    seen = []
    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: seen.append(("global-pre", type(o).__name__))),
        register_optimizer_step_post_hook(lambda o, a, k: seen.append(("global-post", type(o).__name__))),
        opt.base_optimizer.register_step_pre_hook(lambda o, a, k: seen.append(("base-pre", type(o).__name__))),
        opt.base_optimizer.register_step_post_hook(lambda o, a, k: seen.append(("base-post", type(o).__name__))),
    ]
    try:
        train(net, opt, batches(1))
    finally:
        for h in handles:
            h.remove()
    name = cls.__name__
    assert seen == [("global-pre", name), ("base-pre", "LAMB"), ("base-post", "LAMB"), ("global-post", name)]
