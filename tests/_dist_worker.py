"""One rank of the distributed conformance run: ``python -m tests._dist_worker RANK WORLD PORT OUT_DIR``.

tests/test_distributed.py starts one gloo process group per world size (each rank one of these processes) and
every (rule, engine) case runs in it, one after the other. Each case trains a float32 model for STEPS steps and
compares the parameters with a single-process run of the same data (computed here, without the process group).
Each rank writes ``OUT_DIR/rank<RANK>.json``: per case the max abs difference, the placement check of the state,
the collectives the optimizer's step issued (DTensor's CommDebugMode), or the error.

Engines:
    ddp          DistributedDataParallel, each rank a slice of the batch
    fsdp2-layer  FSDP2 fully_shard per Linear, then the root (uneven Shard(0): 7 and 2 rows over 2 or 3 ranks)
    fsdp2-model  FSDP2 fully_shard of the root only, with foreach=True (the multi-tensor path on DTensors)
    tp           tensor parallel: ColwiseParallel (Shard(0)) then RowwiseParallel (Shard(1), bias Replicate),
                 with foreach=True (one multi-tensor call over mixed placements)
    dtensor-s0   distribute_tensor(Shard(0)) parameters (2-d, 3-d, 1-d) with given gradients, some of them
                 orthogonal to θ per row or per tensor, so that AdamP projects along both views
    dtensor-s1   the same with Shard(1) (1-d tensors Replicate)
    zero         ZeroRedundancyOptimizer(optimizer_class=<rule>) under DDP; for a wrapper, optimizer_class is a
                 function that builds Lookahead/Scout around the rule (its slow weights are then sharded too)
    dcp          FSDP2 per layer: saved after 4 steps with torch.distributed.checkpoint, loaded into a fresh model
                 and optimizer, 3 more steps; bitwise equal to the uninterrupted fsdp2-layer run (diff must be 0).
                 get_state_dict / set_state_dict take the optimizer as it is, a wrapper too; Scout's case uses
                 flatten_optimizer_state_dict=True (DCP's other layout, torchtitan's), every other the default
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from reference import WRAPPERS
from tests.registry import BASE, RULES, torch_class
from tests.test_conformance import SETTINGS, build

NAMES = BASE + [f"{w}:lamb" for w in WRAPPERS]
ENGINES = ("ddp", "fsdp2-layer", "fsdp2-model", "tp", "dtensor-s0", "dtensor-s1", "zero", "dcp")
STEPS, SAVE_AT, BATCH = 7, 4, 12
DTYPE = torch.float32


def net(seed: int = 0) -> nn.Module:
    """Linear(5, 7) without bias before a LayerNorm (so its weight is scale-invariant: AdamP projects it),
    Tanh, Linear(7, 2): 7 and 2 rows are uneven over 2 and 3 ranks (rank 2 of 3 holds no row of the last)."""
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 7, bias=False), nn.LayerNorm(7, elementwise_affine=False), nn.Tanh(), nn.Linear(7, 2)]
    return nn.Sequential(*layers).to(DTYPE)


def data() -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, 5, generator=g), torch.randn(BATCH, 2, generator=g)) for _ in range(STEPS)]


def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return ((model(x) - y) ** 2).mean()


def full(t: Tensor) -> Tensor:
    """The whole logical tensor (a gather: used by the test to compare, never by the optimizers)."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def base_of(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    return getattr(opt, "base_optimizer", opt)


# ---- single process --------------------------------------------------------------------------------------
def single_model(name: str, steps: int = STEPS) -> list[Tensor]:
    model = net()
    opt = build(name, model.parameters())
    for x, y in data()[:steps]:
        opt.zero_grad()
        loss(model, x, y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


SHAPES = [(7, 5), (3, 4, 5), (7,), (2, 7)]


def _grads(params: list[Tensor], step: int) -> list[Tensor]:
    """Random gradients; the first orthogonal to θ row by row (AdamP's channel view projects), the second to
    the whole θ (the layer view)."""
    g = torch.Generator().manual_seed(100 + step)
    out = [torch.randn(p.shape, generator=g, dtype=DTYPE) for p in params]
    rows = params[0] / params[0].norm(dim=1, keepdim=True)
    out[0] = out[0] - (out[0] * rows).sum(dim=1, keepdim=True) * rows
    whole = params[1] / params[1].norm()
    out[1] = out[1] - (out[1] * whole).sum() * whole
    return out


def single_tensors(name: str) -> tuple[list[Tensor], list[list[Tensor]]]:
    """The plain run of the dtensor engines: final tensors and the gradients it used (replayed sharded)."""
    torch.manual_seed(2)
    params = [nn.Parameter(torch.randn(s, dtype=DTYPE)) for s in SHAPES]
    opt = build(name, params)
    grads = []
    for i in range(STEPS):
        gs = _grads([p.detach() for p in params], i)
        for p, g in zip(params, gs):
            p.grad = g.clone()
        grads.append(gs)
        opt.step()
    return [p.detach().clone() for p in params], grads


# ---- distributed engines -------------------------------------------------------------------------------
def _opt(name: str, params: Any, engine: str) -> torch.optim.Optimizer:
    if engine == "zero":
        from torch.distributed.optim import ZeroRedundancyOptimizer

        base = name.split(":")[-1]
        # ZeRO builds each rank's optimizer over that rank's share of the parameters by calling optimizer_class:
        # the rule's class; for a wrapper (which takes an optimizer, not parameters), a function that builds it
        local = torch_class(RULES[name]) if ":" not in name else lambda ps, **kw: build(name, ps, **kw)
        return ZeroRedundancyOptimizer(params, optimizer_class=local, **SETTINGS[base])
    return build(name, params, foreach=True) if engine in ("fsdp2-model", "tp") else build(name, params)


def distributed_model(engine: str, mesh: Any, seed: int = 0) -> nn.Module:
    model = net(seed)
    if engine in ("ddp", "zero"):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
    if engine in ("fsdp2-layer", "dcp"):
        from torch.distributed.fsdp import fully_shard

        fully_shard(model[0], mesh=mesh)
        fully_shard(model[3], mesh=mesh)
        return fully_shard(model, mesh=mesh)
    if engine == "fsdp2-model":
        from torch.distributed.fsdp import fully_shard

        return fully_shard(model, mesh=mesh)
    if engine == "tp":
        from torch.distributed.tensor import Replicate
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

        plan = {"0": ColwiseParallel(output_layouts=Replicate()), "3": RowwiseParallel(input_layouts=Replicate())}
        return parallelize_module(model, mesh, plan)
    raise ValueError(engine)


class Comms:
    """The collectives issued inside the optimizer's step (DTensor's CommDebugMode), summed over steps."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def step(self, opt: torch.optim.Optimizer) -> None:
        from torch.distributed.tensor.debug import CommDebugMode

        with CommDebugMode() as mode:
            opt.step()
        for op, n in mode.get_comm_counts().items():
            self.counts[str(op).split(".")[-1] if "." in str(op) else str(op)] += n


def train_distributed(engine: str, name: str, mesh: Any, rank: int, world: int, steps: range, model=None, opt=None):
    model = model if model is not None else distributed_model(engine, mesh)
    opt = opt if opt is not None else _opt(name, model.parameters(), engine)
    comms = Comms()
    per = BATCH // world
    for i in steps:
        x, y = data()[i]
        if engine not in ("tp",):  # data parallel: each rank its slice of the batch; TP: the whole batch
            x, y = x[rank * per : (rank + 1) * per], y[rank * per : (rank + 1) * per]
        opt.zero_grad()
        loss(model, x, y).backward()
        comms.step(opt)
    return model, opt, comms


def check_state(opt: torch.optim.Optimizer, params: list[Tensor]) -> str:
    """'ok', or what is wrong: every state tensor of a DTensor parameter is sharded like it (a 0-d one is a
    plain tensor, the same on every rank), Scout's history one dimension further."""
    from torch.distributed.tensor import DTensor, Shard

    problems = []
    for opt_ in {id(o): o for o in (opt, base_of(opt))}.values():
        for i, p in enumerate(params):
            if not isinstance(p, DTensor):
                continue
            for key, v in opt_.state.get(p, {}).items():
                if not isinstance(v, Tensor):
                    continue
                if v.dim() == 0:
                    if isinstance(v, DTensor):
                        problems.append(f"param {i} {key}: 0-d DTensor")
                    continue
                want = p.placements
                if key == "history":
                    want = tuple(Shard(pl.dim + 1) if isinstance(pl, Shard) else pl for pl in p.placements)
                if not isinstance(v, DTensor):
                    problems.append(f"param {i} {key}: plain tensor of shape {tuple(v.shape)}")
                elif v.placements != want or v.device_mesh != p.device_mesh:
                    problems.append(f"param {i} {key}: {v.placements} vs {want}")
                elif v.to_local().numel() != p.to_local().numel() * (v.shape[0] if key == "history" else 1):
                    problems.append(f"param {i} {key}: local size {tuple(v.to_local().shape)}")
    return "ok" if not problems else "; ".join(problems)


def max_diff(xs: list[Tensor], refs: list[Tensor]) -> float:
    return max(float((full(x.detach()) - r).abs().max()) if r.numel() else 0.0 for x, r in zip(xs, refs))


def case_model(engine: str, name: str, mesh: Any, rank: int, world: int, ref: list[Tensor]) -> dict[str, Any]:
    model, opt, comms = train_distributed(engine, name, mesh, rank, world, range(STEPS))
    params = list(model.parameters())
    res = {"diff": max_diff(params, ref), "state": check_state(opt, params), "comms": dict(comms.counts)}
    if engine == "fsdp2-layer":  # the uninterrupted run the dcp case resumes to (popped before writing)
        res["_local"] = [p.detach().to_local().clone() for p in params]
    return res


def case_tensors(engine: str, name: str, mesh: Any, ref: tuple[list[Tensor], list[list[Tensor]]]) -> dict:
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    final, grads = ref
    dim = 0 if engine == "dtensor-s0" else 1
    torch.manual_seed(2)
    start = [torch.randn(s, dtype=DTYPE) for s in SHAPES]
    place = [[Shard(dim)] if t.dim() > dim else [Replicate()] for t in start]
    params = [nn.Parameter(distribute_tensor(t, mesh, pl)) for t, pl in zip(start, place)]
    opt = build(name, params)
    comms = Comms()
    for gs in grads:
        for p, g, pl in zip(params, gs, place):
            p.grad = distribute_tensor(g, mesh, pl)
        comms.step(opt)
    return {"diff": max_diff(params, final), "state": check_state(opt, params), "comms": dict(comms.counts)}


def case_dcp(name: str, mesh: Any, rank: int, world: int, out: Path, uninterrupted: list[Tensor]) -> dict:
    """Save after SAVE_AT steps, load into a fresh (differently initialised) model and optimizer, finish."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    options = StateDictOptions(flatten_optimizer_state_dict=name.startswith("scout:"))

    def checkpoint(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
        msd, osd = get_state_dict(model, opt, options=options)
        return {"model": msd, "optim": osd}

    path = str(out / "dcp" / name.replace(":", "-"))
    model, opt, _ = train_distributed("dcp", name, mesh, rank, world, range(SAVE_AT))
    dcp.save(checkpoint(model, opt), checkpoint_id=path)
    fresh = distributed_model("dcp", mesh, seed=123)
    fresh_opt = _opt(name, fresh.parameters(), "dcp")
    sd = checkpoint(fresh, fresh_opt)
    dcp.load(sd, checkpoint_id=path)  # in place, into the fresh tensors (a wrapper's φ and history too)
    set_state_dict(fresh, fresh_opt, model_state_dict=sd["model"], optim_state_dict=sd["optim"], options=options)
    fresh, fresh_opt, _ = train_distributed("dcp", name, mesh, rank, world, range(SAVE_AT, STEPS), fresh, fresh_opt)
    params = [p.detach().to_local() for p in fresh.parameters()]
    bitwise = all(torch.equal(a, b) for a, b in zip(params, uninterrupted))
    diff = max(float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(params, uninterrupted))
    return {"diff": diff, "bitwise": bitwise, "state": check_state(fresh_opt, list(fresh.parameters()))}


def run(rank: int, world: int, port: int, out: Path) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=timedelta(seconds=120)
    )
    results: dict[str, Any] = {}
    try:
        mesh = init_device_mesh("cpu", (world,))
        for name in NAMES:
            ref_model, ref_tensors = single_model(name), single_tensors(name)
            uninterrupted: list[Tensor] | None = None
            for engine in ENGINES:
                try:
                    if engine.startswith("dtensor"):
                        res = case_tensors(engine, name, mesh, ref_tensors)
                    elif engine == "dcp":
                        if uninterrupted is None:
                            raise RuntimeError("no uninterrupted fsdp2-layer run to compare with")
                        res = case_dcp(name, mesh, rank, world, out, uninterrupted)
                    else:
                        res = case_model(engine, name, mesh, rank, world, ref_model)
                        uninterrupted = res.pop("_local", uninterrupted)
                except Exception as e:  # recorded (the test fails or xfails on it); the group goes on
                    res = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:400], "trace": traceback.format_exc()}
                results[f"{name}|{engine}"] = res
                print(f"[rank {rank}/{world}] {name:16s} {engine:12s} {res.get('diff', res.get('error'))}", flush=True)
    finally:
        (out / f"rank{rank}.json").write_text(json.dumps(results, indent=1))
        dist.destroy_process_group()


if __name__ == "__main__":
    rank_, world_, port_, out_ = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(rank_, world_, port_, out_)
