"""Distributed training: every rule and both wrappers (around LAMB) under DDP, FSDP2 (per layer; whole model
with foreach), tensor parallelism (foreach) and distribute_tensor Shard(0) / Shard(1), ZeroRedundancyOptimizer,
and a torch.distributed.checkpoint resume under FSDP2; on real gloo process groups of 2 and 3 ranks on the CPU.

One process group per world size, started once (tests/_dist_worker.py runs every case in it: 20-30 s for 2
ranks, 40-60 s for 3 on 2 cores); the tests below read its results. Each case's parameters after 7 steps must equal a
single-process run of the same data within float32 tolerance, every state tensor of a DTensor parameter must be
a DTensor sharded like it, and the optimizer's step must issue only all-reduces of per-tensor (or per-row)
reductions, exactly as many as docs/distributed.md says: never a gather of a parameter or of state.
The (rule, engine, world size) -> max abs difference table is printed and written to <tmp>/distributed.json.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist

from tests._dist_worker import ENGINES, NAMES, STEPS

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo"
)

ROOT = Path(__file__).resolve().parent.parent
WORLDS = (2, 3)
TOL = 1e-5  # float32: a reduction over a shard instead of the whole tensor is off by O(lr) = 1e-2
TIMEOUT = 300  # s per process group
DTENSOR_ENGINES = ("fsdp2-layer", "fsdp2-model", "tp", "dtensor-s0", "dtensor-s1")
MODEL_ENGINES = [e for e in ENGINES if e != "dcp"]

# ---- what the optimizer's step costs, per step (docs/distributed.md) ------------------------------------
#: all-reduces per sharded tensor per step (a replicated tensor needs none)
PER_TENSOR = {"lars": 2, "lamb": 2, "ralars": 2, "tadam": 1, "adabelief": 0, "adan": 0, "ademamix": 0}
#: AdamP, per sharded tensor of >= 2 dims (1-d: no projection): Shard(0) keeps the channel rows local (one
#: count), Shard(1) all-reduces the 3 per-row vectors and the projection's per-row dot product
ADAMP = {0: 5, 1: 8}
#: Scout, per sharded tensor per sync: its coherence (a count and a sum over the tensor)
SCOUT_SYNC = 2
#: the sharded tensors of each engine's model: (sharded dim, ndim); see tests/_dist_worker.py
SHARDED = {
    "fsdp2-layer": [(0, 2), (0, 2), (0, 1)],
    "fsdp2-model": [(0, 2), (0, 2), (0, 1)],
    "tp": [(0, 2), (1, 2)],  # the row-parallel bias is replicated
    "dtensor-s0": [(0, 2), (0, 3), (0, 1), (0, 2)],
    "dtensor-s1": [(1, 2), (1, 3), (1, 2)],  # the 1-d tensor is replicated
}
SYNC_PERIOD = 3  # tests.test_conformance.build


def expected_all_reduces(name: str, engine: str) -> int:
    base = name.split(":")[-1]
    per_step = sum(ADAMP[d] if nd >= 2 else 0 for d, nd in SHARDED[engine]) if base == "adamp" else 0
    per_step += PER_TENSOR.get(base, 0) * len(SHARDED[engine])
    syncs = STEPS // SYNC_PERIOD if name.startswith("scout:") else 0
    return STEPS * per_step + syncs * SCOUT_SYNC * len(SHARDED[engine])


# ---- the process groups ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_group(world: int, out: Path) -> tuple[dict[str, Any], float]:
    """Start `world` ranks (each its own process, on its own free port), wait, merge their results."""
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests._dist_worker"]
    port, start = _free_port(), time.perf_counter()
    logs = [open(out / f"rank{r}.log", "w") for r in range(world)]
    procs = [
        subprocess.Popen([*cmd, str(r), str(world), str(port), str(out)], cwd=ROOT, env=env, stdout=log, stderr=log)
        for r, log in enumerate(logs)
    ]
    try:
        for p in procs:
            p.wait(timeout=max(1.0, TIMEOUT - (time.perf_counter() - start)))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:  # only those we started, by their handle
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    elapsed = time.perf_counter() - start
    tails = "\n".join(f"rank {r}: ...{(out / f'rank{r}.log').read_text()[-3000:]}" for r in range(world))
    missing = [r for r in range(world) if not (out / f"rank{r}.json").exists()]
    if missing:
        codes = [p.returncode for p in procs]
        pytest.fail(f"world {world}: ranks {missing} wrote no results (exit codes {codes})\n{tails}")
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]
    merged = {}
    for key in ranks[0]:
        per_rank = [r.get(key, {"error": "missing on this rank"}) for r in ranks]
        errors = [f"rank {i}: {r['error']}\n{r.get('trace', '')}" for i, r in enumerate(per_rank) if "error" in r]
        merged[key] = (
            {"error": per_rank[[("error" in r) for r in per_rank].index(True)]["error"], "trace": "\n".join(errors)}
            if errors
            else {
                "diff": max(r["diff"] for r in per_rank),
                "state": "; ".join(sorted({r["state"] for r in per_rank})),
                "comms": per_rank[0].get("comms"),
                "bitwise": all(r.get("bitwise", True) for r in per_rank),
            }
        )
    return merged, elapsed


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{"cases": {world: {"<name>|<engine>": result}}, "seconds": {world: s}, "dir": the results' folder}."""
    base = tmp_path_factory.mktemp("distributed")
    out: dict[str, Any] = {"cases": {}, "seconds": {}, "dir": base}
    for world in WORLDS:
        out["cases"][world], out["seconds"][world] = _run_group(world, base / f"world{world}")
    return out


def _case(runs: dict, world: int, name: str, engine: str) -> dict[str, Any]:
    res = runs["cases"][world][f"{name}|{engine}"]
    if "error" in res:
        pytest.fail(f"{name} under {engine}, world {world}: {res['error']}\n{res['trace']}")
    return res


# ---- the tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", MODEL_ENGINES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("world", WORLDS)
def test_distributed_equals_single_process(runs, world, name, engine):
    res = _case(runs, world, name, engine)
    assert res["diff"] <= TOL, f"max |θ_distributed - θ_single| = {res['diff']:.3g}"
    assert res["state"] == "ok", res["state"]


@pytest.mark.parametrize("engine", DTENSOR_ENGINES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("world", WORLDS)
def test_step_only_all_reduces_its_reductions(runs, world, name, engine):
    """Nothing is gathered; each per-tensor (or per-row) reduction is all-reduced once, then reused."""
    comms = _case(runs, world, name, engine)["comms"]
    assert set(comms) <= {"all_reduce"}, comms
    assert comms.get("all_reduce", 0) == expected_all_reduces(name, engine), comms


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("world", WORLDS)
def test_fsdp2_checkpoint_resumes_bitwise(runs, world, name):
    res = _case(runs, world, name, "dcp")
    assert res["bitwise"] and res["diff"] == 0.0, f"resumed run differs by {res['diff']:.3g}"
    assert res["state"] == "ok", res["state"]


def test_example_runs_under_torchrun():
    """examples/distributed.py: FSDP2 + LAMB on 2 ranks (it starts torchrun itself), and its DCP round trip."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run(
        [sys.executable, "examples/distributed.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("parameters and LAMB state equal: True") == 2, done.stdout


def test_report_table(runs, capsys):
    """The (rule, engine, world size) -> max abs difference table (also <tmp>/distributed.json)."""
    table = {
        f"{name}|{engine}|{world}": runs["cases"][world][f"{name}|{engine}"]
        for world in WORLDS
        for name in NAMES
        for engine in ENGINES
    }
    path = runs["dir"] / "distributed.json"
    path.write_text(json.dumps({"seconds": runs["seconds"], "cases": table}, indent=1))
    width = max(len(e) for e in ENGINES) + 2
    lines = [f"{'rule':16s}{'world':>6s}  " + "".join(f"{e:>{width}s}" for e in ENGINES)]
    for name in NAMES:
        for world in WORLDS:
            cells = []
            for engine in ENGINES:
                res = table[f"{name}|{engine}|{world}"]
                cells.append("error" if "error" in res else f"{res['diff']:.1e}")
            lines.append(f"{name:16s}{world:>6d}  " + "".join(f"{c:>{width}s}" for c in cells))
    seconds = ", ".join(f"{w} ranks {s:.0f} s" for w, s in runs["seconds"].items())
    with capsys.disabled():
        print(f"\nmax |θ - θ_single process| after {STEPS} float32 steps ({seconds}); {path}")
        print("\n".join(lines))
