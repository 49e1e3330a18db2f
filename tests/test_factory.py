"""holocron_torch.optim.create and weight_decay_groups: every registry name builds its class, wrappers compose by
name, bad names and bad hyperparameters are refused, biases and norm layers get no weight decay."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import holocron_torch.optim as optim
from holocron_torch.optim.factory import names, resolve, split_hyperparameters
from reference import BASE_RULES, RULES, WRAPPERS

COMPOSED = [(w, b) for w in WRAPPERS for b in BASE_RULES]


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 2))


def one_step(opt: torch.optim.Optimizer, model: nn.Module) -> None:
    opt.zero_grad()
    model(torch.ones(3, 4)).square().mean().backward()
    opt.step()


@pytest.mark.parametrize("name", list(BASE_RULES))
def test_every_base_rule_by_name(name):
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    opt = optim.create(name, model, lr=0.01)
    assert type(opt) is getattr(optim, RULES[name].cls)
    assert opt.param_groups[0]["lr"] == 0.01
    one_step(opt, model)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


@pytest.mark.parametrize(("wrapper", "base"), COMPOSED)
def test_every_wrapper_base_composition(wrapper, base):
    model = mlp()
    opt = optim.create(f"{wrapper}_{base}", model, lr=0.02, sync_rate=0.8, sync_period=3)
    assert type(opt) is getattr(optim, RULES[wrapper].cls)
    assert type(opt.base_optimizer) is getattr(optim, RULES[base].cls)
    group = opt.param_groups[0]
    assert (group["lr"], group["sync_rate"], group["sync_period"]) == (0.02, 0.8, 3)
    assert "sync_period" not in opt.base_optimizer.defaults  # the wrapper's own hyperparameters stay its own
    for _ in range(3):
        one_step(opt, model)


def test_names_lists_every_base_and_composition():
    assert names() == list(BASE_RULES) + [f"{w}_{b}" for w, b in COMPOSED]
    for name in names():
        resolve(name)


@pytest.mark.parametrize("name", ["AdaBelief", "LAMB", " lamb ", "Lookahead_LAMB", "SCOUT_adan"])
def test_names_are_case_insensitive(name):
    opt = optim.create(name, mlp())
    base, wrapper = resolve(name)
    cls = wrapper.cls if wrapper is not None else base.cls
    assert type(opt).__name__ == cls


@pytest.mark.parametrize("name", ["adam", "", "lamb_lookahead", "lookahead_scout", "lookahead_", "lookahead-lamb"])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(ValueError, match="unknown optimizer") as info:
        optim.create(name, mlp())
    for valid in [*BASE_RULES, *WRAPPERS]:
        assert valid in str(info.value)


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_a_bare_wrapper_asks_for_its_base(wrapper):
    with pytest.raises(ValueError, match="is a wrapper"):
        optim.create(wrapper, mlp())


def test_a_name_that_is_not_a_string():
    with pytest.raises(TypeError, match="str"):
        optim.create(optim.LAMB, mlp())


@pytest.mark.parametrize(
    ("name", "hp", "error", "text"),
    [
        ("lamb", dict(lr=-1.0), ValueError, "lr"),
        ("lamb", dict(betas=(1.5, 0.9)), ValueError, "betas"),
        ("adan", dict(betas=(0.9, 0.9)), ValueError, "betas"),
        ("lars", dict(nesterov=True), ValueError, "nesterov"),
        ("lamb", dict(momentum=0.9), TypeError, "momentum"),
        ("lamb", dict(sync_period=3), TypeError, "sync_period"),
        ("lookahead_lamb", dict(sync_period=0), ValueError, "sync_period"),
        ("scout_adan", dict(sync_period=1), ValueError, "sync_period"),
        ("scout_adan", dict(sync_rate=0.0), ValueError, "sync_rate"),
        ("lookahead_adan", dict(eps=0.0), ValueError, "eps"),
        ("lookahead_adan", dict(dof=3.0), TypeError, "dof"),
        ("adamp", dict(weight_decay=-0.1), ValueError, "weight_decay"),
        ("tadam", dict(weight_decay="x"), TypeError, "weight_decay"),
    ],
)
def test_bad_hyperparameters_are_refused(name, hp, error, text):
    with pytest.raises(error, match=text):
        optim.create(name, mlp(), **hp)


def test_unknown_hyperparameters_name_the_accepted_ones():
    with pytest.raises(TypeError) as info:
        split_hyperparameters("lookahead_lamb", {"lr": 0.1, "momentum": 0.9})
    for accepted in ("lr", "betas", "scale_clip", "foreach", "maximize", "sync_rate", "sync_period"):
        assert accepted in str(info.value)


def test_hyperparameters_split_between_wrapper_and_base():
    base, own = split_hyperparameters("scout_lamb", {"lr": 0.1, "sync_period": 4, "maximize": True})
    assert base == {"lr": 0.1, "maximize": True}
    assert own == {"sync_period": 4}


def test_params_and_param_groups_are_taken_as_torch_takes_them():
    model = mlp()
    opt = optim.create("adan", model.parameters(), lr=0.1)
    assert len(opt.param_groups) == 1
    first, last = list(model[0].parameters()), list(model[3].parameters())
    opt = optim.create("lookahead_adan", [{"params": first}, {"params": last, "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["sync_period"] for g in opt.param_groups] == [6, 6]


def test_foreach_and_maximize_reach_the_base():
    opt = optim.create("lookahead_lamb", mlp(), foreach=True, maximize=True)
    assert opt.param_groups[0]["foreach"] is True
    assert opt.param_groups[0]["maximize"] is True


def test_weight_decay_with_a_module_spares_biases_and_norms():
    model = mlp()
    opt = optim.create("lamb", model, lr=0.01, weight_decay=0.1)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    every = optim.create("lamb", model, lr=0.01, weight_decay=0.1, decay_bias_and_norm=True)
    assert len(every.param_groups) == 1
    assert every.param_groups[0]["weight_decay"] == 0.1
    plain = optim.create("lamb", model, lr=0.01)
    assert len(plain.param_groups) == 1


def test_weight_decay_groups_wrapped():
    model = mlp()
    opt = optim.create("scout_adamp", model, weight_decay=0.05, sync_period=2)
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 0.05]
    for _ in range(2):
        one_step(opt, model)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv = nn.Conv1d(4, 4, 3)
        self.bn = nn.BatchNorm1d(4)
        self.ln = nn.LayerNorm((4, 2))  # a 2-d norm weight: still no decay (it is a norm layer's)
        self.gn = nn.GroupNorm(2, 4)
        self.rms = nn.RMSNorm(4)
        self.head = nn.Linear(4, 3)
        self.tied = self.head  # a shared module: its parameters appear once
        self.pos_embed = nn.Parameter(torch.zeros(1, 4))
        self.scale = nn.Parameter(torch.ones(()))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def split(model: nn.Module, **kw) -> tuple[set[str], set[str]]:
    groups = optim.weight_decay_groups(model, 0.3, **kw)
    by_id = {id(p): n for n, p in model.named_parameters()}
    decay = {by_id[id(p)] for g in groups if g["weight_decay"] == 0.3 for p in g["params"]}
    free = {by_id[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    return decay, free


def test_weight_decay_groups_put_biases_and_norms_in_the_no_decay_group():
    decay, free = split(Net())
    assert decay == {"embed.weight", "conv.weight", "head.weight", "pos_embed"}
    assert free == {
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "ln.weight",
        "ln.bias",
        "gn.weight",
        "gn.bias",
        "rms.weight",
        "head.bias",
        "scale",
    }


def test_weight_decay_groups_no_decay_by_name_or_suffix():
    decay, free = split(Net(), no_decay=["pos_embed", "embed.weight"])
    assert decay == {"conv.weight", "head.weight"}
    assert {"pos_embed", "embed.weight"} <= free
    with pytest.raises(ValueError, match="typo"):
        optim.weight_decay_groups(Net(), 0.1, no_decay=["typo"])


def test_weight_decay_groups_leave_out_empty_groups_and_feed_any_optimizer():
    bias_only = nn.Linear(3, 1)
    bias_only.weight.requires_grad_(False)
    groups = optim.weight_decay_groups(bias_only, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.0]
    opt = torch.optim.AdamW(optim.weight_decay_groups(mlp(), 0.1), lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
