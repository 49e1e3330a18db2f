"""The fused CPU path (fused=True, holocron_torch/optim/_fused): the same numbers and the same state as the default
path, its fallbacks (dtypes and layouts the kernels do not take), its errors, and its on-disk build cache.
The step-for-step suite (tests/test_step_for_step.py, modes "fused" and "fused-maximize") checks it against the
reference in float64; here it is checked against the default path, in float32 and float64."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import holocron_torch.optim as optim
from holocron_torch.optim import _fused
from reference import adamp as adamp_ref
from tests.registry import BASE, RULES, torch_class

#: per rule, settings that reach every buffer and branch (amsgrad, nesterov, warm-ups, clip, dof)
SETTINGS = {
    "lars": [
        dict(momentum=0.9, weight_decay=0.01, nesterov=True),
        dict(momentum=0.5, dampening=0.3, scale_clip=(0.1, 2.0)),
    ],
    "lamb": [dict(weight_decay=0.01), dict(scale_clip=(0.5, 2.0))],
    "ralars": [dict(weight_decay=0.01), dict(force_adaptive_momentum=True), dict(betas=(0.9, 0.9))],
    "tadam": [dict(weight_decay=0.01), dict(amsgrad=True, dof=5.0), dict(dof=math.inf)],
    "adabelief": [dict(weight_decay=0.01), dict(amsgrad=True)],
    "adamp": [dict(weight_decay=0.1), dict(amsgrad=True, nesterov=True, weight_decay=0.1)],
    "adan": [dict(weight_decay=0.01), dict(amsgrad=True)],
    "ademamix": [dict(weight_decay=0.01), dict(alpha_warmup=3, beta3_warmup=3)],
}
CASES = [pytest.param(name, kw, id=f"{name}-{i}") for name in BASE for i, kw in enumerate(SETTINGS[name])]
SHAPES = [(), (1,), (33,), (0,), (6, 5), (1, 40), (4, 3, 3, 3)]
#: float32: both paths round differently (the kernels sum in double, compute per-tensor scalars in double)
RTOL = {torch.float64: 1e-12, torch.float32: 1e-4}


def tensors(dtype, seed=0, shapes=SHAPES):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]


def gradients(params, step, orthogonal=False):
    """Seeded gradients; ``orthogonal``: each row of a >= 2-d one made orthogonal to its parameter's row (AdamP's
    channel view projects), on odd steps only the whole tensor (the layer view projects)."""
    g = torch.Generator().manual_seed(1000 + step)
    out = []
    for p in params:
        x = torch.randn(p.shape, generator=g, dtype=torch.float64)
        th = p.detach().double()
        if orthogonal and p.dim() >= 2 and p.numel():
            if step % 2:
                x = x - (x * th).sum() / (th * th).sum() * th
            else:
                rows, t2 = x.reshape(p.shape[0], -1), th.reshape(p.shape[0], -1)
                x = (rows - (rows * t2).sum(1, keepdim=True) / (t2 * t2).sum(1, keepdim=True) * t2).reshape(p.shape)
        out.append(x.to(p.dtype))
    return out


def run(name, kw, dtype, fused, steps=5, maximize=False, orthogonal=False, lr=0.01):
    params = [nn.Parameter(t) for t in tensors(dtype)]
    opt = torch_class(RULES[name])(params, lr=lr, maximize=maximize, fused=fused, **kw)
    for t in range(steps):
        for p, g in zip(params, gradients(params, t, orthogonal)):
            p.grad = g
        opt.step()
    return params, opt


def assert_close(a, b, rtol, what):
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if a.numel():
        scale = b.double().abs().max().item()
        err = (a.double() - b.double()).abs().max().item()
        assert err <= rtol * (scale + 1e-300), f"{what}: |diff| {err:.3g} > {rtol:g} × {scale:.3g}"


def assert_same_run(fused, default, rtol):
    (pf, of), (pd, od) = fused, default
    for i, (x, y) in enumerate(zip(pf, pd)):
        assert_close(x, y, rtol, f"tensor {i}")
        sf, sd = of.state[x], od.state[y]
        assert sf.keys() == sd.keys(), f"tensor {i}: state {sorted(sf)} != {sorted(sd)}"
        for k in sd:
            assert_close(sf[k], sd[k], 0.0 if k == "step" else rtol, f"tensor {i}, state {k!r}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("maximize", [False, True], ids=["min", "max"])
@pytest.mark.parametrize(("name", "kw"), CASES)
def test_fused_equals_default_path_every_buffer(name, kw, maximize, dtype):
    fused = run(name, kw, dtype, True, maximize=maximize)
    default = run(name, kw, dtype, None, maximize=maximize)
    assert_same_run(fused, default, RTOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("delta", [0.1, 1.0])
def test_adamp_projection_both_views(delta, dtype):
    """Gradients orthogonal to θ per row (even steps) or as a whole (odd steps): the kernels' per-row sums must
    decide and project as the default path does."""
    kw = dict(weight_decay=0.1, wd_ratio=0.3, delta=delta)
    params = [p for p in tensors(torch.float64) if p.dim() >= 2]
    for step, view in ((0, 0), (1, 1)):  # the view that projects: (a) rows on even steps, (b) the whole on odd ones
        for p, g in zip(params, gradients(params, step, orthogonal=True)):
            cos = [np.abs(adamp_ref.cosine(x, th, 1e-8)).max() * math.sqrt(th.shape[1]) for x, th in
                   zip(adamp_ref.views(g.numpy()), adamp_ref.views(p.numpy()))]  # fmt: skip
            assert cos[view] < delta and (view == 0 or p.shape[0] == 1 or cos[0] >= delta), (step, p.shape, cos)
    fused = run("adamp", kw, dtype, True, steps=6, orthogonal=True)
    default = run("adamp", kw, dtype, None, steps=6, orthogonal=True)
    assert_same_run(fused, default, RTOL[dtype])


def test_lr_tensor_and_param_groups():
    def go(fused):
        params = [nn.Parameter(t) for t in tensors(torch.float64)]
        groups = [{"params": params[:3], "lr": torch.tensor(0.05)}, {"params": params[3:], "weight_decay": 0.1}]
        opt = optim.LAMB(groups, lr=0.01, fused=fused)
        for t in range(3):
            for p, g in zip(params, gradients(params, t)):
                p.grad = g
            opt.step()
        return params, opt

    assert_same_run(go(True), go(None), RTOL[torch.float64])


@pytest.mark.parametrize("name", BASE)
def test_state_dicts_move_between_fused_and_default(name):
    """The state layout is the default path's: train fused, continue on the default path (and back), and land
    where a run on one path lands."""
    kw = SETTINGS[name][-1]
    ref_params, ref_opt = run(name, kw, torch.float64, None, steps=6)
    params = [nn.Parameter(t) for t in tensors(torch.float64)]
    opt = torch_class(RULES[name])(params, lr=0.01, fused=True, **kw)
    for t in range(6):
        if t in (2, 4):  # switch paths through a saved state_dict
            buf = io.BytesIO()
            torch.save(opt.state_dict(), buf)
            buf.seek(0)
            opt = torch_class(RULES[name])(params, lr=0.01, fused=t == 4, **kw)
            opt.load_state_dict(torch.load(buf))
            assert opt.param_groups[0]["fused"] is (t == 2)  # saved groups carry the flag, as torch's
            opt.param_groups[0]["fused"] = t == 4
        for p, g in zip(params, gradients(params, t)):
            p.grad = g
        opt.step()
    assert_same_run((params, opt), (ref_params, ref_opt), RTOL[torch.float64])


@pytest.mark.parametrize("name", BASE)
def test_fallback_for_what_the_kernels_do_not_take(name):
    """bfloat16 and non-dense (strided view) parameters in a fused group take the default list function, per
    tensor: bitwise the default path's numbers; the float64 neighbours still go through the kernels."""
    kw = SETTINGS[name][-1]

    def go(fused):
        base = torch.randn(6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        params = [
            nn.Parameter(torch.randn(5, 4, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)),
            nn.Parameter(base[:, ::2]),  # not dense: strides (8, 2)
            nn.Parameter(torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))),
        ]
        assert not params[1].is_contiguous()
        opt = torch_class(RULES[name])(params, lr=0.01, maximize=True, fused=fused, **kw)
        for t in range(3):
            for p, g in zip(params, gradients(params, t)):
                p.grad = g
            opt.step()
        return params, opt

    (pf, of), (pd, od) = go(True), go(False)
    for i in (0, 1):
        assert torch.equal(pf[i], pd[i]), f"tensor {i}"
        for k in od.state[pd[i]]:
            assert torch.equal(of.state[pf[i]][k], od.state[pd[i]][k]), f"tensor {i}, state {k!r}"
    assert_same_run(([pf[2]], of), ([pd[2]], od), RTOL[torch.float64])


def test_kernels_report_what_they_skip():
    ext = _fused.load()
    p = [torch.zeros(3, dtype=torch.bfloat16), torch.zeros(3), torch.zeros(4, 4)[:, ::2]]
    g = [torch.ones_like(x) for x in p]
    v = [torch.zeros_like(x) for x in p]
    steps = [torch.zeros((), dtype=torch.float64) for _ in p]
    assert ext.lars(p, g, v, steps, 0.1, 0.0, 0.0, 0.0, False, 0.0, math.inf, 1.0) == [0, 2]
    assert [s.item() for s in steps] == [0.0, 1.0, 0.0]  # only the tensor it updated counts a step


def test_version_counters_are_bumped_like_any_in_place_op():
    p = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = optim.Adan([p], fused=True)
    p.grad = torch.ones_like(p)
    before = p._version
    opt.step()
    assert p._version > before


def test_invalid_fused_options():
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="fused"):
        optim.LAMB(p, fused=True, foreach=True)
    with pytest.raises(TypeError, match="fused"):
        optim.LAMB(p, fused="yes")
    _fused.check_devices([SimpleNamespace(device=torch.device("cuda", 0))])  # CUDA: the compiled path
    with pytest.raises(NotImplementedError, match="CPU and CUDA tensors only"):
        _fused.check_devices([SimpleNamespace(device=torch.device("mps"))])
    opt = optim.LAMB(p)
    with pytest.raises(ValueError, match="fused"):  # a group added later is checked too, and not kept
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "fused": True, "foreach": True})
    assert len(opt.param_groups) == 1


def test_meta_parameters_materialised_later_as_torch_fused_adamw(monkeypatch):
    """Construction over meta parameters builds nothing (the device is not known yet) and is accepted, as torch's
    fused AdamW accepts it; after ``to_empty(device="cpu")`` (with swapped module parameters, so the optimizer's
    parameters become the CPU tensors) the steps run the kernels and equal an optimizer built on the CPU. A step
    over parameters still on the meta device raises, before making any state."""

    def model(device):
        torch.manual_seed(0)
        kw = dict(device=device, dtype=torch.float64)
        return nn.Sequential(nn.Linear(4, 3, **kw), nn.Linear(3, 1, **kw))

    def train(m, opt):
        for t in range(3):
            for p, g in zip(m.parameters(), gradients(list(m.parameters()), t)):
                p.grad = g
            opt.step()

    built = _fused.load()
    monkeypatch.setattr(_fused, "_ext", None)
    monkeypatch.setattr(_fused, "load", lambda: pytest.fail("built at construction over meta parameters"))
    meta = model("meta")
    for cls in (optim.LAMB, torch.optim.AdamW):
        cls(meta.parameters(), fused=True)  # torch's fused AdamW takes them too
    opt = optim.LAMB(meta.parameters(), lr=0.01, weight_decay=0.1, fused=True)
    meta[0].weight.grad = torch.ones_like(meta[0].weight)
    with pytest.raises(NotImplementedError, match="meta"):
        opt.step()
    assert not opt.state
    meta[0].weight.grad = None
    monkeypatch.setattr(_fused, "load", lambda: built)
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        meta.to_empty(device="cpu")
    finally:
        torch.__future__.set_swap_module_params_on_conversion(previous)
    assert all(p.device.type == "cpu" for g in opt.param_groups for p in g["params"])
    reference = model("cpu")
    with torch.no_grad():
        for p, q in zip(meta.parameters(), reference.parameters()):
            p.copy_(q)
    opt_ref = optim.LAMB(reference.parameters(), lr=0.01, weight_decay=0.1, fused=True)
    train(meta, opt)
    train(reference, opt_ref)
    for p, q in zip(meta.parameters(), reference.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["m"], opt_ref.state[q]["m"])


@pytest.mark.parametrize("maximize", [False, True], ids=["min", "max"])
def test_compiled_step_keeps_the_kernels_out_of_the_graph(caplog, maximize):
    """torch.compile(opt.step, fullgraph=True) over a fused=True optimizer: no graph break (fullgraph), no warning
    and no Dynamo log record beyond those of the same optimizer with fused=None (the C++ kernels are not traced: the
    rule's list function is), and the numbers of the eager fused steps."""
    import logging

    import torch._dynamo.testing

    def go(fused):
        torch._dynamo.reset()
        caplog.clear()
        params = [[nn.Parameter(t) for t in tensors(torch.float64, shapes=[(3, 4), (5,)])] for _ in range(2)]
        opts = [optim.LAMB(ps, lr=0.01, weight_decay=0.01, maximize=maximize, fused=fused) for ps in params]
        counter = torch._dynamo.testing.CompileCounterWithBackend("eager")
        compiled_step = torch.compile(opts[1].step, fullgraph=True, backend=counter)
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="torch"):
            warnings.simplefilter("always")
            for t in range(4):
                for ps in params:
                    for p, g in zip(ps, gradients(ps, t)):
                        p.grad = g
                opts[0].step()
                opts[1].step() if t == 0 else compiled_step()  # the first (eager) step creates the state
        assert counter.frame_count == 1
        assert_same_run((params[1], opts[1]), (params[0], opts[0]), RTOL[torch.float64])
        return {str(w.message) for w in caught}, {
            r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
        }

    default, fused = go(None), go(True)
    assert fused[0] <= default[0] and fused[1] <= default[1], (fused, default)


def test_a_failed_build_is_a_clear_runtime_error_at_construction(monkeypatch):
    def no_compiler(folder):
        raise OSError("[Errno 2] No such file or directory: 'c++'")

    monkeypatch.setattr(_fused, "_ext", None)
    monkeypatch.setattr(_fused, "_load_or_build", no_compiler)
    with pytest.raises(RuntimeError, match=r"could not be built or loaded: OSError: .*'c\+\+'") as info:
        optim.AdaBelief([nn.Parameter(torch.zeros(2))], fused=True)
    assert isinstance(info.value.__cause__, OSError)
    optim.AdaBelief([nn.Parameter(torch.zeros(2))]).step()  # the default path never builds


def test_the_build_is_cached_on_disk_for_later_processes():
    """A new process loads the library built before (no compile: the .so keeps its timestamp)."""
    _fused.load()
    folder = _fused.build_directory()
    [so] = folder.glob("*.so")
    stamp = so.stat().st_mtime_ns
    code = "from holocron_torch.optim import _fused; print(_fused.load().__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == str(so)
    assert so.stat().st_mtime_ns == stamp
