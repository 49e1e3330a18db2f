"""LAMB on a tiny model sharded with FSDP2, on CPU (gloo), with a torch.distributed.checkpoint round trip.

    torchrun --standalone --nproc-per-node 2 examples/distributed.py
    python examples/distributed.py          # the same: starts torchrun with 2 processes itself

Each rank holds a shard of every parameter and of LAMB's m and v (uneven: 33 rows over 2 ranks); LAMB's two
norms per tensor are all-reduced as scalars, nothing is gathered. See docs/distributed.md.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from holocron_torch import optim


def model() -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank
    net = nn.Sequential(nn.Linear(16, 33), nn.ReLU(), nn.Linear(33, 4))
    for layer in (net[0], net[2]):
        fully_shard(layer)  # per layer, then the root
    return fully_shard(net)


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    init_device_mesh("cpu", (world,))
    net = model()
    opt = optim.LAMB(net.parameters(), lr=5e-2, weight_decay=0.01)  # after fully_shard: over the DTensors
    gen = torch.Generator().manual_seed(1 + rank)  # each rank its own data
    w_true = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    for step in range(1, 101):
        x = torch.randn(32, 16, generator=gen)
        loss = ((net(x) - x @ w_true) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            dist.all_reduce(loss := loss.detach(), op=dist.ReduceOp.AVG)
            if rank == 0:
                print(f"step {step:3d}  loss {loss.item():.4f}")

    weight = net[0].weight
    m = opt.state[weight]["m"]
    print(f"rank {rank}: weight {tuple(weight.shape)} -> local {tuple(weight.to_local().shape)}, m {m.placements}")

    # checkpoint (each rank writes its shards) and resume into a fresh model and optimizer
    path = [tempfile.mkdtemp(prefix="holocron-dcp-") if rank == 0 else None]
    dist.broadcast_object_list(path)
    msd, osd = get_state_dict(net, opt)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=path[0])
    fresh = model()
    fresh_opt = optim.LAMB(fresh.parameters(), lr=5e-2, weight_decay=0.01)
    msd, osd = get_state_dict(fresh, fresh_opt)
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=path[0])
    set_state_dict(fresh, fresh_opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    same = all(torch.equal(a.to_local(), b.to_local()) for a, b in zip(net.parameters(), fresh.parameters()))
    same &= torch.equal(fresh_opt.state[fresh[0].weight]["m"].to_local(), m.to_local())
    print(f"rank {rank}: resumed from the checkpoint: parameters and LAMB state equal: {same}")
    dist.barrier()
    if rank == 0:
        shutil.rmtree(path[0])
    dist.destroy_process_group()


if __name__ == "__main__":
    if "LOCAL_RANK" in os.environ:
        main()
    else:  # not under torchrun: start it
        from torch.distributed.run import main as torchrun

        torchrun(["--standalone", "--nproc-per-node", "2", *sys.argv])
