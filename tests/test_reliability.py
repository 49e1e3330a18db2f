"""Reliability: checkpoints (ours across processes, holocron 0.3.0's), runtime edge inputs, NaN policy,
GradScaler, and the finite-step property. See docs/reliability.md for the table this file proves."""

from __future__ import annotations

import math
import pathlib
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from holocron_torch.testing import strategies
from tests.registry import BASE, RULES, WRAPPED, torch_class
from tests.test_conformance import batches, build, model, train

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ALL = BASE + [f"{w}:{b}" for w, b in WRAPPED]
CHILD = r"""
import io, sys, torch
sys.path.insert(0, {root!r})
from tests.test_conformance import batches, build, model, train
ckpt = torch.load({path!r}, weights_only=True)
net = model(seed=123)
net.load_state_dict(ckpt["model"])
opt = build({name!r}, net.parameters())
opt.load_state_dict(ckpt["opt"])
train(net, opt, batches(7)[4:])
torch.save([p.detach() for p in net.parameters()], {out!r})
"""


def _plain(x) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return all(_plain(v) for v in x)
    return x is None or isinstance(x, (bool, int, float, str, torch.Tensor))


@pytest.mark.parametrize("name", ALL)
def test_resume_in_a_new_process_is_bitwise(name, tmp_path):
    data = batches(7)
    ref = model()
    train(ref, build(name, ref.parameters()), data)
    net = model()
    opt = build(name, net.parameters())
    train(net, opt, data[:4])  # wrappers sync every 3 steps: saved in the middle of a period
    sd = opt.state_dict()
    assert _plain(sd)
    path, out = tmp_path / "ckpt.pt", tmp_path / "out.pt"
    torch.save({"model": net.state_dict(), "opt": sd}, path)
    root = str(pathlib.Path(__file__).parent.parent)
    code = CHILD.format(root=root, path=str(path), name=name, out=str(out))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    for p, q in zip(ref.parameters(), torch.load(out, weights_only=True)):
        assert torch.equal(p.detach(), q)


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("holocron-0.3.0-*.pt")), ids=lambda p: p.stem)
def test_holocron_checkpoint_loads_and_training_continues(fixture):
    ckpt = torch.load(fixture, weights_only=True)
    name, data = ckpt["rule"], ckpt["batches"]
    net = model(seed=5)
    net.load_state_dict(ckpt["model"])
    opt = torch_class(RULES[name])(net.parameters(), **{"lr": ckpt["opt"]["param_groups"][0]["lr"]})
    opt.load_state_dict(ckpt["opt"])
    for p in net.parameters():
        st_ = opt.state[p]
        assert st_["step"].dtype == torch.float64 and float(st_["step"]) in (1.0, 3.0)
        assert set(RULES[name].state_fields(opt.param_groups[0])) <= set(st_)
    losses = []
    for x, y in data[3:]:
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(math.isfinite(v) for v in losses)
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_adabelief_holocron_s_gets_its_eps_back():
    ckpt = torch.load(FIXTURES / "holocron-0.3.0-adabelief.pt", weights_only=True)
    net = model()
    opt = torch_class(RULES["adabelief"])(net.parameters(), lr=0.01)
    opt.load_state_dict(ckpt["opt"])
    holo_s = ckpt["opt"]["state"][0]["exp_avg_sq"]
    expected = holo_s + 1e-8 * (1 - 0.999**3) / (1 - 0.999)
    torch.testing.assert_close(opt.state[next(iter(net.parameters()))]["s"], expected)


# ---- runtime edge inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASE)
def test_empty_and_zero_dim_tensors_and_zero_weights(name):
    params = [
        nn.Parameter(torch.zeros(0, dtype=torch.float64)),
        nn.Parameter(torch.zeros(0, 3, dtype=torch.float64)),
        nn.Parameter(torch.tensor(0.5, dtype=torch.float64)),
        nn.Parameter(torch.zeros(3, 2, dtype=torch.float64)),
    ]
    opt = build(name, params)
    for _ in range(3):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
    assert all(torch.isfinite(p).all() for p in params)
    assert all(torch.isfinite(t).all() for st_ in opt.state.values() for t in st_.values())
    assert torch.any(params[3] != 0)  # a weight initialised to zeros still trains


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", BASE)
def test_mixed_dtypes_in_one_group(name, foreach):
    a = [nn.Parameter(torch.ones(3, dtype=torch.float64)), nn.Parameter(torch.ones(2, dtype=torch.float32))]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    mixed = build(name, a, foreach=foreach)
    alone = [build(name, [p], foreach=foreach) for p in b]
    for _ in range(3):
        for p, q in zip(a, b):
            p.grad = torch.full_like(p, 0.3)
            q.grad = torch.full_like(q, 0.3)
        mixed.step()
        for o in alone:
            o.step()
    for p, q in zip(a, b):
        assert p.dtype == q.dtype and torch.equal(p, q)


@pytest.mark.parametrize("name", BASE)
def test_nan_gradient_policy_is_torch_optims(name):
    """Like torch.optim: no check inside step() (that would be a host sync); a NaN gradient reaches the
    parameter. Guard with torch.amp.GradScaler or by checking the loss."""
    p = nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = build(name, [p])
    p.grad = torch.tensor([math.nan, 1.0, 1.0], dtype=torch.float64)
    opt.step()
    assert torch.isnan(p).any()


@pytest.mark.parametrize("name", ALL)
def test_grad_scaler_skips_the_step_on_inf(name):
    net = model(dtype=torch.float32)
    opt = build(name, net.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, y = batches(1, dtype=torch.float32)[0]
    for bad in (False, True, False):
        opt.zero_grad()
        scaler.scale(((net(x) - y) ** 2).mean()).backward()
        if bad:
            next(iter(net.parameters())).grad[0, 0] = math.inf
        before = [p.detach().clone() for p in net.parameters()]
        scaler.step(opt)
        scaler.update()
        moved = any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
        assert moved != bad
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("name", BASE)
@given(data=st.data())
def test_one_step_from_sane_finite_inputs_is_finite(name, data):
    rule = RULES[name]
    hp = data.draw(strategies.hyperparameters(rule))
    params = data.draw(strategies.tensor_lists())
    grads = [data.draw(strategies.arrays(p.shape)) for p in params]
    ts = [nn.Parameter(torch.tensor(p)) for p in params]
    opt = torch_class(rule)(ts, **hp)
    for t, g in zip(ts, grads):
        t.grad = torch.tensor(g)
    opt.step()
    assert all(torch.isfinite(t).all() for t in ts)
