"""The soak: 10,000 float64 steps of every rule (wrappers around LAMB) against the reference, on a small
problem, recording the worst drift and the process's memory. `make soak` runs it and writes docs/soak.md.

Drift after step t is max over parameters and state buffers of |torch - reference| / max(|reference| so far),
i.e. the harness's own measure. Memory is the resident set size (from /proc/self/statm) after step 100 and at
the end: it must not grow.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

import holocron_torch.optim as optim
from holocron_torch.testing import wrapped
from reference import BASE_RULES, RULES, WRAPPERS

SHAPES = [(8, 4), (4,), ()]
HYPER = {"lars": dict(lr=0.01, momentum=0.9), "ademamix": dict(lr=1e-3, alpha_warmup=500, beta3_warmup=500)}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(name: str, steps: int, seed: int = 0) -> dict[str, float]:
    """Run ``name`` (a rule, or a wrapper around LAMB) for ``steps``; return worst drift and memory."""
    rule = RULES[name]
    hp = HYPER.get(name, dict(lr=1e-3)) if not rule.wrapper else dict(lr=1e-3, sync_period=5)
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in SHAPES]
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    if rule.wrapper:
        base = BASE_RULES["lamb"]
        ref = wrapped(rule.module, base.module, [h.name for h in rule.hypers])
        opt = getattr(optim, rule.cls)(optim.LAMB(tensors, lr=hp["lr"]), sync_period=hp["sync_period"])
        fields = [("base_optimizer", f) for f in base.state] + [(None, "phi")]
    else:
        ref = rule.module
        opt = getattr(optim, rule.cls)(tensors, **hp)
        fields = [(None, f) for f in rule.state_fields(hp)]
    state = ref.init(params, **hp)
    scale: dict[tuple[int, str], float] = {}
    worst, mem_early = 0.0, 0.0
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(s) for s in SHAPES]
        for x, g in zip(tensors, grads):
            x.grad = torch.tensor(g)
        opt.step()
        params, state = ref.step(params, grads, state, **hp)
        for i, x in enumerate(tensors):
            pairs = [("param", x.detach().numpy(), params[i])]
            for owner, f in fields:
                o = getattr(opt, owner) if owner else opt
                r = state.base if owner else state
                pairs.append((f, o.state[x][f].numpy(), getattr(r, f)[i]))
            for key, a, e in pairs:
                s = scale[(i, key)] = max(scale.get((i, key), 0.0), float(np.max(np.abs(e))))
                if s > 0:
                    worst = max(worst, float(np.max(np.abs(a - e))) / s)
        if t == 100:
            mem_early = rss_mb()
    return {"drift": worst, "rss_after_100_mb": mem_early, "rss_end_mb": rss_mb()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--out", default="docs/soak.md")
    args = ap.parse_args(argv)
    rows, t0 = [], time.time()
    for name in list(BASE_RULES) + list(WRAPPERS):
        r = soak(name, args.steps)
        rows.append((name, r))
        print(
            f"{name:10s} drift {r['drift']:.2e}  rss {r['rss_after_100_mb']:.1f} -> {r['rss_end_mb']:.1f} MB",
            flush=True,
        )
    lines = [
        "# Soak: 10,000 float64 steps against the reference",
        "",
        f"Written by `make soak` (`python tools/soak.py`) on {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.steps} steps per rule, "
        f"{time.time() - t0:.0f} s in all. Wrappers wrap LAMB "
        "(sync_period 5). Gradients are seeded normal draws; parameters of shapes (8, 4), (4,), ().",
        "",
        "Drift: the largest |torch - reference| over all steps, parameters and state buffers, relative to that buffer's"
        " largest magnitude so far. Memory: resident set size of the process after step 100 and after the last step"
        f" (peak RSS of the run: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB).",
        "",
        "| rule | worst drift | RSS after step 100 (MB) | RSS at the end (MB) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {r['drift']:.2e} | {r['rss_after_100_mb']:.1f} | {r['rss_end_mb']:.1f} |" for n, r in rows]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", args.out)
    worst = max(r["drift"] for _, r in rows)
    grew = max(r["rss_end_mb"] - r["rss_after_100_mb"] for _, r in rows)
    return 0 if worst < 1e-8 and grew < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
