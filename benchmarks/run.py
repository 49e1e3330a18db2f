"""Run the optimizer-step benchmark and write docs/benchmarks.md and docs/benchmarks.png.

    python -m benchmarks.run            # the full run (`make bench`)
    python -m benchmarks.run --quick    # smoke run: 1M set only, few rounds; writes to a temporary folder

Each (parameter set, rule) is one subprocess (benchmarks.worker) holding every implementation of that rule;
each sweep series is one more. The machine is shared, so absolute times from different runs are never
compared: every ratio is taken within one round of one process, then the median over rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RULES = ("lars", "lamb", "ralars", "tadam", "adabelief", "adamp", "adan", "ademamix")
SWEEP_RULES = ("adabelief", "lamb")

#: per parameter set: warm-up steps, rounds, seconds of work per implementation per round, cap on steps
FULL = {
    "resnet50": {"warmup": 2, "rounds": 15, "target_s": 0.25, "max_steps": 4, "mem_steps": 1},
    "small": {"warmup": 3, "rounds": 25, "target_s": 0.05, "max_steps": 20, "mem_steps": 2},
}
QUICK = {"small": {"warmup": 2, "rounds": 4, "target_s": 0.02, "max_steps": 5, "mem_steps": 1}}
SWEEP_FULL = {
    "numel": {
        "points": [[n, 100] for n in (10**5, 10**6, 3 * 10**6, 10**7, 3 * 10**7, 10**8)],
        "warmup": 2,
        "rounds": 5,
    },
    "tensors": {"points": [[10**6, t] for t in (10, 30, 100, 300, 1000)], "warmup": 2, "rounds": 5},
}
SWEEP_QUICK = {
    "numel": {"points": [[n, 10] for n in (10**4, 10**5, 10**6)], "warmup": 1, "rounds": 3},
    "tensors": {"points": [[10**5, t] for t in (10, 30, 100)], "warmup": 1, "rounds": 2},
}


#: glibc settings for the timed workers (``--malloc warm``): blocks under 32 MiB (glibc's largest mmap threshold)
#: come from the heap, and freed heap memory is never handed back to the OS. Every implementation then runs on a
#: warm heap, as in a long training loop; with glibc's adaptive defaults, whether a step's temporaries are
#: re-faulted page by page depends on what the process allocated before (see the doc).
WARM_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def _worker(spec: dict[str, Any], tmp: Path, name: str, timeout: float, malloc: str) -> dict[str, Any]:
    spec_path, out_path = tmp / f"{name}.spec.json", tmp / f"{name}.out.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(out_path)]
    env = {k: v for k, v in os.environ.items() if k not in WARM_MALLOC}
    if malloc == "warm":
        env.update(WARM_MALLOC)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        print(f"  {name}: worker failed ({proc.returncode}): {tail}", flush=True)
        return {"error": f"worker exited {proc.returncode}: {tail}", "wall_s": wall}
    out = json.loads(out_path.read_text())
    out["wall_s"] = wall
    if proc.stderr.strip():
        out["stderr_tail"] = proc.stderr.strip().splitlines()[-1][:300]
    return out


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "mem_gib": round(mem_gib, 1), "python": platform.python_version()}


def _git_state() -> str:
    """The commit measured and the files of ours that differ from it (the tree is measured as it is)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "holocron_torch", "reference"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    files = sorted(line[3:] for line in dirty.stdout.splitlines())
    return head.stdout.strip() + (f" + uncommitted changes in {', '.join(files)}" if files else ", clean")


def _peer_status() -> dict[str, dict[str, str | None]]:
    """Version and importability of each peer (in a subprocess: importing them must not touch this one)."""
    code = (
        "import json\nfrom benchmarks import impls\nout = {}\n"
        "for lib, mod, pkg in [('pylocron', 'holocron.optim', 'holocron'), ('pytorch_optimizer', 'pytorch_optimizer',"
        " None), ('timm', 'timm.optim.lamb', 'timm'), ('heavyball', 'heavyball', None)]:\n"
        "    try:\n"
        "        impls.import_skipping_init(pkg, mod) if pkg else __import__(mod)\n"
        "        err = None\n"
        "    except Exception as e:\n"
        "        err = f'{type(e).__name__}: {e}'[:300]\n"
        "    out[lib] = {'version': impls.version(lib), 'error': err}\n"
        "import torch\nout['torch'] = {'version': torch.__version__, 'error': None}\nprint(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"cannot import the benchmark's libraries:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = {k: v for k, v in (QUICK if args.quick else FULL).items() if not args.sizes or k in args.sizes}
    sweeps = SWEEP_QUICK if args.quick else SWEEP_FULL
    rules = ["adamw", *(r for r in RULES if not args.rules or r in args.rules)]
    common = {"seed": 0, "threads": args.threads, "heavyball_eager": args.quick or args.heavyball_eager}
    raw: dict[str, Any] = {"quick": args.quick, "threads": args.threads, "heavyball_eager": common["heavyball_eager"]}
    raw.update(malloc=args.malloc, git_start=_git_state())
    raw.update(machine=_machine(), libraries=_peer_status(), compare={}, sweep={})
    raw["start"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    raw["load_start"] = os.getloadavg()
    # one process per (set, rule) and per sweep series; --quick puts all of a kind in one process
    jobs: list[tuple[str, dict[str, Any]]] = []
    for size, cfg in sizes.items():
        for group in [rules] if args.quick else [[r] for r in rules]:
            spec = {"mode": "compare", "size": size, "rules": group, "memory": True, **common, **cfg}
            jobs.append((f"{size}-{'+'.join(group) if len(group) < 3 else 'all'}", spec))
    if not args.no_sweep:
        series = [[rule, name, cfg] for rule in SWEEP_RULES for name, cfg in sweeps.items()]
        for group in [series] if args.quick else [[s] for s in series]:
            spec = {"mode": "sweep", "jobs": group, "target_s": 0.2, "max_steps": 10, **common}
            jobs.append((f"sweep-{'+'.join(g[0] + '-' + g[1] for g in group) if len(group) < 3 else 'all'}", spec))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="holocron-bench-") as tmp_name:
        for i, (name, spec) in enumerate(jobs, 1):
            out = _worker(spec, Path(tmp_name), name, args.timeout, args.malloc)
            keys = spec["rules"] if spec["mode"] == "compare" else [f"{r}/{n}" for r, n, _ in spec["jobs"]]
            for key in keys:
                res = out.get(key, {"error": out.get("error", "no result")})
                if spec["mode"] == "compare":
                    raw["compare"].setdefault(spec["size"], {})[key] = res
                else:
                    rule, series_name = key.split("/")
                    raw["sweep"].setdefault(rule, {})[series_name] = res
            print(f"[{i}/{len(jobs)}] {name}: {out['wall_s']:.0f} s", flush=True)
    raw["wall_s"] = time.perf_counter() - t0
    raw["load_end"] = os.getloadavg()
    raw["git_end"] = _git_state()
    return raw


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run (~1 min): 1M set, few rounds, small sweeps")
    p.add_argument("--out", type=Path, help="folder for benchmarks.md/.png (default: docs/, or a temp folder)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in every worker (default 1: see the doc)")
    p.add_argument("--rules", nargs="*", choices=RULES, help="only these rules")
    p.add_argument("--sizes", nargs="*", choices=tuple(FULL), help="only these parameter sets")
    p.add_argument("--no-sweep", action="store_true", help="skip the scaling sweeps")
    p.add_argument("--heavyball-eager", action="store_true", help="run heavyball uncompiled (always in --quick)")
    p.add_argument("--timeout", type=float, default=1200, help="seconds allowed per worker")
    p.add_argument(
        "--malloc",
        choices=("warm", "default"),
        default="warm",
        help="glibc allocator of the timed workers: warm heap (default) or glibc's adaptive defaults",
    )
    p.add_argument("--json", type=Path, help="also save the raw measurements here")
    p.add_argument("--from-json", type=Path, help="write the report from saved raw measurements, measure nothing")
    args = p.parse_args(argv)

    from .report import write  # matplotlib only where a report is written

    if args.from_json:
        raw = json.loads(args.from_json.read_text())
    else:
        raw = run(args)
        if args.json:
            args.json.write_text(json.dumps(raw))
    out = args.out or (Path(tempfile.gettempdir()) / "holocron-bench-quick" if raw["quick"] else ROOT / "docs")
    out.mkdir(parents=True, exist_ok=True)
    md, png = write(raw, out / "benchmarks.md", out / "benchmarks.png")
    print(f"wrote {md} and {png} ({raw['wall_s'] / 60:.1f} min of measuring)")


if __name__ == "__main__":
    main()
