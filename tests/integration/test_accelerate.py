"""accelerate with each optimizer (torch.optim.AdamW the control): ``Accelerator.prepare`` (the optimizer and its
scheduler wrapped, gradient accumulation over 2 micro-batches) trains, ``save_state`` / ``load_state`` (which
loads with ``torch.load(weights_only=True)``) resume bitwise, and the FSDP2 branch of ``prepare``, which swaps the
parameters of an optimizer built before it for the sharded ones, trains as unsharded.

A tiny MLP, 8 micro-batches of 4 (4 optimizer steps), the state saved after 2 optimizer steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.integration._common import LR, NAMES, assert_bitwise, build, snapshot

pytest.importorskip("accelerate")

from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_switch_optimizer_parameters, load_fsdp_optimizer, save_fsdp_optimizer
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

ACCUMULATE, MICRO_BATCHES, SAVE_AFTER = 2, 8, 4  # the state is saved after 4 micro-batches = 2 optimizer steps
GAMMA = 0.5


def parts(name: str) -> tuple[nn.Module, torch.optim.Optimizer, Any, torch.utils.data.DataLoader]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3))
    opt = build(name, model.parameters())
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=GAMMA)
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g))
    return model, opt, sched, torch.utils.data.DataLoader(data, batch_size=4, shuffle=False)


def train(accelerator: Accelerator, model: nn.Module, opt: Any, sched: Any, batches: Any) -> list[float]:
    losses = []
    for x, y in batches:
        with accelerator.accumulate(model):
            loss = nn.functional.cross_entropy(model(x), y)
            accelerator.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module", params=NAMES)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """8 micro-batches with ``save_state`` after the 4th; then fresh objects, ``load_state`` and the last 4."""
    name = request.param
    ckpt = tmp_path_factory.mktemp(f"acc-{name}") / "state"
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE)
    model, opt, sched, loader = parts(name)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    model, popt, loader, psched = accelerator.prepare(model, opt, loader, sched)
    batches = list(loader)
    losses = train(accelerator, model, popt, psched, batches[:SAVE_AFTER])
    accelerator.save_state(str(ckpt))
    losses += train(accelerator, model, popt, psched, batches[SAVE_AFTER:])
    full = snapshot(model, opt)

    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE)
    model2, opt2, sched2, loader2 = parts(name)
    model2, popt2, loader2, psched2 = accelerator.prepare(model2, opt2, loader2, sched2)
    accelerator.load_state(str(ckpt))
    train(accelerator, model2, popt2, psched2, accelerator.skip_first_batches(loader2, SAVE_AFTER))
    return {
        "initial": initial,
        "full": full,
        "losses": losses,
        "prepared": popt,
        "opt": opt,
        "lr": [g["lr"] for g in opt.param_groups],
        "resumed": snapshot(model2, opt2),
    }


def test_prepare_trains(run: dict[str, Any]) -> None:
    """``prepare`` wraps our optimizer (AcceleratedOptimizer over the same object and param groups) and its
    scheduler; with 2-step accumulation the optimizer and the scheduler stepped 4 times in 8 micro-batches."""
    prepared, opt = run["prepared"], run["opt"]
    assert isinstance(prepared, AcceleratedOptimizer) and prepared.optimizer is opt
    assert prepared.param_groups is opt.param_groups
    assert run["lr"] == pytest.approx([LR * GAMMA ** (MICRO_BATCHES // ACCUMULATE)])
    assert all(v == v and abs(v) < 1e3 for v in run["losses"])
    params = run["full"]["params"]
    assert all(not torch.equal(params[n], p) for n, p in run["initial"].items()), "a parameter never moved"


def test_save_state_load_state_bitwise(run: dict[str, Any]) -> None:
    """``load_state`` of the state saved after 2 optimizer steps, into fresh prepared objects, then the last 4
    micro-batches: parameters and optimizer state equal the uninterrupted run's bit for bit."""
    assert_bitwise(run["resumed"], run["full"], "resumed")


def sharded(name: str, shard: bool = True) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3))
    opt = build(name, model.parameters())
    if shard:
        # what Accelerator.prepare does under FSDP2 to an optimizer built before it (accelerate 1.15, _prepare_fsdp2):
        # shard the model, then point the optimizer's param groups at the new (DTensor) parameters
        old = list(model.named_parameters())
        fully_shard(model)
        new = dict(model.named_parameters())
        fsdp2_switch_optimizer_parameters(opt, {p.data_ptr: new[n] for n, p in old})
    return model, opt


def steps(model: nn.Module, opt: torch.optim.Optimizer, batches: list) -> list[torch.Tensor]:
    for x, y in batches:
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return [p.full_tensor() if isinstance(p, DTensor) else p.detach().clone() for p in model.parameters()]


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 8, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(7)]


@pytest.fixture(scope="module")
def process_group() -> Any:
    """A one-process gloo group (FSDP2 needs one; a world of 1 shards nothing but takes every FSDP2 code path)."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("name", NAMES)
def test_fsdp2_prepare_switches_parameters(name: str, process_group: Any) -> None:
    """An optimizer built before ``prepare`` under FSDP2 has its parameters replaced by the sharded ones
    (accelerate's ``fsdp2_switch_optimizer_parameters``); it then trains as over the unsharded model (7 steps,
    two syncs of the wrappers), equal to float32 rounding (DTensor reductions are ordered differently)."""
    for a, b in zip(steps(*sharded(name), batches()), steps(*sharded(name, shard=False), batches())):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_fsdp2_save_load_optimizer_bitwise(name: str, process_group: Any, tmp_path: Path) -> None:
    """accelerate's FSDP2 optimizer checkpoint (``save_fsdp_optimizer`` / ``load_fsdp_optimizer``, what
    ``save_state`` / ``load_state`` call under FSDP2: torch.distributed.checkpoint's get/set_optimizer_state_dict
    and dcp.save/load, sharded state dict) after 4 steps, loaded into a fresh sharded model and optimizer: the
    last 3 steps end where the uninterrupted run does, bit for bit."""
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, state_dict_type="SHARDED_STATE_DICT")
    accelerator = Accelerator(cpu=True)
    data = batches()
    model, opt = sharded(name)
    steps(model, opt, data[:4])
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_fsdp_optimizer(plugin, accelerator, opt, model, str(tmp_path))
    expected = steps(model, opt, data[4:])

    model, opt = sharded(name)
    model.load_state_dict(weights)
    load_fsdp_optimizer(plugin, accelerator, opt, model, str(tmp_path))
    for a, b in zip(steps(model, opt, data[4:]), expected):
        assert torch.equal(a, b), f"max |diff| {(a - b).abs().max().item():.3g}"
