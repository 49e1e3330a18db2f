"""docs/benchmarks.md and docs/benchmarks.png from one run's raw measurements (see benchmarks.run)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from . import impls

PEER_KEYS = ("pylocron", "pytorch_optimizer", "timm", "heavyball")
PEER_TITLE = {
    "pylocron": "holocron",
    "pytorch_optimizer": "pytorch_optimizer",
    "timm": "timm",
    "heavyball": "heavyball",
}
BAR_KEYS = ("ours-fused", "ours", "ours-foreach", *PEER_KEYS)
COLORS = {
    "ours-fused": "#08306b",
    "ours": "#1f77b4",
    "ours-foreach": "#9ecae1",
    "pylocron": "#d62728",
    "pytorch_optimizer": "#2ca02c",
    "timm": "#9467bd",
    "heavyball": "#ff7f0e",
}
SIZE_ORDER = ("resnet50", "small")


# ---- statistics (every ratio is taken within a round, then the median over rounds) ------------------------


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


def _ratio(a: list[float], b: list[float]) -> float:
    return _med([x / y for x, y in zip(a, b)])


def _quartiles(a: list[float], b: list[float]) -> tuple[float, float]:
    """First and third quartile over rounds of a ÷ b (the spread the noise leaves)."""
    r = [x / y for x, y in zip(a, b)]
    if len(r) < 2:
        return r[0], r[0]
    q = statistics.quantiles(r, n=4)
    return q[0], q[2]


def _floor_rounds(streams: int, numel: int, bw: list[float]) -> list[float]:
    """Seconds per step at the byte floor, one per round (from that round's triad bandwidth)."""
    return [streams * impls.BYTES * numel / (b * 1e9) for b in bw]


def _ok(res: dict[str, Any], key: str) -> bool:
    rec = res.get("impls", {}).get(key)
    return bool(rec and rec["rounds"] and not rec["error"])


def _fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _fmt_ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"


def _fmt_mem(res: dict[str, Any], key: str) -> str:
    rec = res["impls"].get(key)
    if not rec or rec.get("mem") is None:
        return "—"
    return f"{rec['mem'] / (impls.BYTES * res['numel']):.2f}"


def _fmt_faults(res: dict[str, Any], key: str) -> str:
    """Pages first touched per timed step (minor faults), as bytes over the parameters' bytes."""
    faults = res["impls"][key].get("faults")
    return "—" if faults is None else f"{faults * 4096 / (impls.BYTES * res['numel']):.2f}"


class Stats:
    """Derived numbers for one (parameter set, rule) worker result."""

    def __init__(self, rule: str, res: dict[str, Any]):
        self.rule, self.res = rule, res
        self.streams = impls.FLOORS[rule].streams
        self.floor = _floor_rounds(self.streams, res["numel"], res["bw"])

    def ok(self, key: str) -> bool:
        return _ok(self.res, key)

    def rounds(self, key: str) -> list[float]:
        return self.res["impls"][key]["rounds"]

    def ms(self, key: str) -> float:
        return _med(self.rounds(key))

    def vs(self, a: str, b: str) -> float | None:
        return _ratio(self.rounds(a), self.rounds(b)) if self.ok(a) and self.ok(b) else None

    def vs_spread(self, a: str, b: str) -> str:
        """'median (q1–q3)' of a ÷ b over the rounds."""
        if not (self.ok(a) and self.ok(b)):
            return "—"
        q1, q3 = _quartiles(self.rounds(a), self.rounds(b))
        return f"{_fmt_ratio(self.vs(a, b))} ({_fmt_ratio(q1)}–{_fmt_ratio(q3)})"

    def over_floor(self, key: str) -> float | None:
        return _ratio(self.rounds(key), self.floor) if self.ok(key) else None


# ---- markdown ----------------------------------------------------------------------------------------------


def _size_title(size: str, res: dict[str, Any]) -> str:
    return f"{impls.SIZES[size][0]} ({res['numel'] / 1e6:.2f}M params, {res['tensors']} tensors)"


def _summary(raw: dict[str, Any]) -> list[str]:
    head = (
        "| rule | set | ours ms | ours foreach ms | ours ÷ holocron | ours ÷ pytorch_optimizer | ours ÷ timm "
        "| ours ÷ heavyball | ours ÷ floor | ours ÷ AdamW fused | transient ours ×P | transient ours foreach ×P |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for rule in (r for r in impls.FLOORS if r != "adamw"):
        for size in SIZE_ORDER:
            res = raw["compare"].get(size, {}).get(rule)
            if not res or "impls" not in res:
                continue
            st = Stats(rule, res)
            if not st.ok("ours"):
                lines.append(f"| {rule} | {impls.SIZES[size][0]} | not measured |" + " |" * 11)
                continue
            fe = _fmt_ms(st.ms("ours-foreach")) if st.ok("ours-foreach") else "—"
            peers = [_fmt_ratio(st.vs("ours", k)) for k in PEER_KEYS]
            cells = [
                impls.BASE_RULES[rule].cls,
                impls.SIZES[size][0],
                _fmt_ms(st.ms("ours")),
                fe,
                *peers,
                _fmt_ratio(st.over_floor("ours")),
                _fmt_ratio(st.vs("ours", impls.ADAMW_FUSED)),
                _fmt_mem(res, "ours"),
                _fmt_mem(res, "ours-foreach"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _summary_fused(raw: dict[str, Any]) -> list[str]:
    head = (
        "| rule | set | fused ms | fused ÷ fastest peer | fused ÷ holocron | fused ÷ default path | fused ÷ floor "
        "| fused ÷ AdamW fused | transient fused ×P |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for rule in (r for r in impls.FLOORS if r != "adamw"):
        for size in SIZE_ORDER:
            res = raw["compare"].get(size, {}).get(rule)
            if not res or "impls" not in res:
                continue
            st = Stats(rule, res)
            if not st.ok("ours-fused"):
                continue
            peers = [r for r in (st.vs("ours-fused", k) for k in PEER_KEYS if st.ok(k)) if r is not None]
            cells = [
                impls.BASE_RULES[rule].cls,
                impls.SIZES[size][0],
                _fmt_ms(st.ms("ours-fused")),
                _fmt_ratio(max(peers)) if peers else "—",
                _fmt_ratio(st.vs("ours-fused", "pylocron")) if st.ok("pylocron") else "—",
                _fmt_ratio(st.vs("ours-fused", "ours")),
                _fmt_ratio(st.over_floor("ours-fused")),
                _fmt_ratio(st.vs("ours-fused", impls.ADAMW_FUSED)),
                _fmt_mem(res, "ours-fused"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _mem(st: Stats, key: str) -> float | None:
    """Transient memory of one implementation as a multiple of the parameters' bytes."""
    mem = st.res["impls"][key].get("mem") if st.ok(key) else None
    return None if mem is None else mem / (impls.BYTES * st.res["numel"])


def _findings(raw: dict[str, Any]) -> list[str]:
    """A few sentences computed from the numbers (so that they are re-written with every run)."""
    lines = []
    for size in SIZE_ORDER:
        stats = [
            Stats(rule, res)
            for rule, res in raw["compare"].get(size, {}).items()
            if rule != "adamw" and "impls" in res and _ok(res, "ours")
        ]
        if not stats:
            continue
        # ours ÷ the fastest peer: the largest ours ÷ peer (below 1: ours beats every peer)
        best = {
            st.rule: max((st.vs("ours", k), k) for k in PEER_KEYS if st.ok(k))
            for st in stats
            if any(st.ok(k) for k in PEER_KEYS)
        }
        wins = sorted(impls.BASE_RULES[r].cls for r, (x, _) in best.items() if x < 1)
        floors = [st.over_floor("ours") for st in stats]
        fe = [st.vs("ours-foreach", "ours") for st in stats if st.ok("ours-foreach")]
        mem_fe = [
            st.res["impls"]["ours-foreach"]["mem"] / (impls.BYTES * st.res["numel"])
            for st in stats
            if st.ok("ours-foreach") and st.res["impls"]["ours-foreach"]["mem"] is not None
        ]
        ratios = ", ".join(f"{impls.BASE_RULES[r].cls} {x:.2f} ({PEER_TITLE[k]})" for r, (x, k) in best.items())
        holo = {impls.BASE_RULES[st.rule].cls: st.vs("ours", "pylocron") for st in stats if st.ok("pylocron")}
        mem = [_mem(st, "ours") for st in stats if _mem(st, "ours") is not None]
        # the fused path's target (within 1.3x of the floor) is at the large size; the small set sits in cache
        fused = {
            impls.BASE_RULES[st.rule].cls: st.over_floor("ours-fused")
            for st in stats
            if st.ok("ours-fused") and size == "resnet50"
        }
        lines.append(
            f"- **{impls.SIZES[size][0]}, issue 4's targets:** default path ≤ 0.5× holocron's time for "
            f"{sum(x <= 0.5 for x in holo.values())} of {len(holo)} rules (ours ÷ holocron "
            f"{min(holo.values()):.2f}–{max(holo.values()):.2f}); transient memory ≤ 1×P for "
            f"{sum(x <= 1 for x in mem)} of {len(mem)} (at most {max(mem):.2f}×P)"
            + (
                f"; fused within 1.3× its floor for {sum(x <= 1.3 for x in fused.values())} of {len(fused)} "
                f"({min(fused.values()):.2f}–{max(fused.values()):.2f}"
                + (
                    "; over: " + ", ".join(f"{r} {x:.2f}" for r, x in fused.items() if x > 1.3) + ")."
                    if any(x > 1.3 for x in fused.values())
                    else ")."
                )
                if fused
                else "."
            )
            if holo and mem
            else f"- **{impls.SIZES[size][0]}:** (targets not computed: an implementation is missing)"
        )
        lines.append(
            f"- **{impls.SIZES[size][0]}:** ours (default) is faster than every peer for "
            f"{len(wins)} of {len(best)} rules{': ' + ', '.join(wins) if wins else ''}. Ours ÷ the fastest peer: "
            f"{ratios}. Ours ÷ floor: {min(floors):.1f}–{max(floors):.1f} (median {_med(floors):.1f})"
            + (
                f"; ours foreach ÷ ours default: median {_med(fe):.2f}, for {_med(mem_fe):.1f}×P transient memory."
                if fe and mem_fe
                else "."
            )
        )
    return lines


def _rule_table(rule: str, raw: dict[str, Any]) -> list[str]:
    head = (
        "| set | implementation | ms/step | ours ÷ it (quartiles) | ours foreach ÷ it | it ÷ floor | it ÷ AdamW fused "
        "| transient ×P | page faults ×P | first step ms | settings beyond the common ones |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for size in SIZE_ORDER:
        res = raw["compare"].get(size, {}).get(rule)
        if not res or "impls" not in res:
            continue
        st = Stats(rule, res)
        for key, rec in res["impls"].items():
            if key == impls.ADAMW_FUSED and rule != "adamw":
                continue
            if not st.ok(key):
                lines.append(f"| {impls.SIZES[size][0]} | {rec['label']} | not measured: {rec['error']} |" + " |" * 8)
                continue
            kwargs = rec["kwargs"] if rec["kwargs"] != "{}" else ""
            cells = [
                impls.SIZES[size][0],
                rec["label"],
                _fmt_ms(st.ms(key)),
                st.vs_spread("ours", key) if rule != "adamw" and key != "ours" else "",
                _fmt_ratio(st.vs("ours-foreach", key)) if rule != "adamw" and key != "ours-foreach" else "",
                _fmt_ratio(st.over_floor(key)),
                _fmt_ratio(st.vs(key, impls.ADAMW_FUSED)),
                _fmt_mem(res, key),
                _fmt_faults(res, key),
                _fmt_ms(rec["warmup"][0]),
                f"`{kwargs}`" if kwargs else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, R²)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def _sweep_points(rule: str, series: dict[str, Any]) -> list[dict[str, float]]:
    streams = impls.FLOORS[rule].streams
    out = []
    for p in series["points"]:
        floor = _floor_rounds(streams, p["numel"], p["bw"])
        out.append(
            {
                "numel": p["numel"],
                "tensors": p["tensors"],
                "s": _med(p["rounds"]),
                "floor_s": _med(floor),
                "over_floor": _ratio(p["rounds"], floor),
            }
        )
    return out


def _sweeps(raw: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for rule, series in raw["sweep"].items():
        name = impls.BASE_RULES[rule].cls
        res = series.get("numel", {})
        if "points" in res:
            pts = _sweep_points(rule, res)
            lines += [
                f"**{name}, ours (default path), parameters swept at {pts[0]['tensors']} tensors:**",
                "",
                "| params | per tensor | ms/step | ns/param | slope from previous | floor ms | ÷ floor |",
                "|---|---|---|---|---|---|---|",
            ]
            prev = None
            for p in pts:
                slope = f"{math.log(p['s'] / prev['s']) / math.log(p['numel'] / prev['numel']):.2f}" if prev else ""
                lines.append(
                    f"| {p['numel']:.0e} | {p['numel'] / p['tensors']:.0e} | {_fmt_ms(p['s'])} | "
                    f"{p['s'] / p['numel'] * 1e9:.2f} | {slope} | {_fmt_ms(p['floor_s'])} | "
                    f"{_fmt_ratio(p['over_floor'])} |"
                )
                prev = p
            lines += [
                "",
                "Slope: d log(time) / d log(params) from the row above; 1 is time proportional to size, below 1 the "
                "fixed per-tensor cost still dominates, above 1 the cost per parameter grows (for example temporaries "
                "that no longer fit a cache).",
                "",
            ]
        res = series.get("tensors", {})
        if "points" in res:
            pts = _sweep_points(rule, res)
            a, b, r2 = _fit([p["tensors"] for p in pts], [p["s"] for p in pts])
            lines += [
                f"**{name}, ours (default path), {pts[0]['numel']:.0e} parameters split into more and more tensors:**",
                "",
                "| tensors | ms/step | ÷ floor |",
                "|---|---|---|",
            ]
            for p in pts:
                lines.append(f"| {p['tensors']} | {_fmt_ms(p['s'])} | {_fmt_ratio(p['over_floor'])} |")
            lines += [
                "",
                f"Least-squares line: {a * 1e3:.2f} ms + **{b * 1e6:.0f} µs per tensor**, R² = {r2:.3f}.",
                "",
            ]
        for s_name, s_res in series.items():
            if "error" in s_res and "points" not in s_res:
                lines += [f"{name} {s_name} sweep not measured: {s_res['error']}", ""]
    return lines


def _bw_all(raw: dict[str, Any]) -> list[float]:
    out = [b for sizes in raw["compare"].values() for res in sizes.values() for b in res.get("bw", [])]
    return out or [b for s in raw["sweep"].values() for r in s.values() for p in r.get("points", []) for b in p["bw"]]


def _calib(raw: dict[str, Any]) -> dict[str, float]:
    out = {}
    for size in SIZE_ORDER:
        vals = [
            c / (impls.BYTES * res["numel"])
            for res in raw["compare"].get(size, {}).values()
            for c in (res.get("calib") or [])
            if c is not None
        ]
        if vals:
            out[size] = _med(vals)
    return out


_PEER_NOTES = {
    "pylocron": "pylocron 0.3.0, `--no-deps`. Its package `__init__` imports torchvision, which cannot load against "
    "this torch build: `holocron.optim` is imported with only that package-level `__init__` skipped "
    "(an empty `holocron` package registered over the installed folder). Has all eight rules.",
    "pytorch_optimizer": "`--no-deps`; imports as it is. Has LARS, Lamb, AdaBelief, AdamP, Adan, AdEMAMix; no TAdam "
    "and no RaLars (its `Lamb(rectify=True)`, RAdam's rectification inside LAMB, stands in for RaLars).",
    "timm": "`--no-deps` (no torchvision, pyyaml, huggingface_hub, safetensors: the optimizer modules need none). "
    "`timm/__init__` and `timm/optim/__init__` both import torchvision (through timm.layers / timm.models), so each "
    "optimizer module (`timm.optim.lamb`, ...) is imported with those two skipped. Has Lars, Lamb, AdaBelief, AdamP, "
    "Adan; no TAdam, RaLars or AdEMAMix (timm only lists bitsandbytes' AdEMAMix, CUDA-only).",
    "heavyball": "`--no-deps` (+ opt-einsum). Imports and runs on torch 2.13 CPU. Of our rules it has AdEMAMix only. "
    "Its step is compiled with torch.compile (inductor, C++ on CPU) by default: the first steps compile, which the "
    "'first step' column shows; they are warm-up, never timed.",
}


def _markdown(raw: dict[str, Any]) -> str:
    m, libs = raw["machine"], raw["libraries"]
    bw = _bw_all(raw)
    calib = _calib(raw)
    quick = raw["quick"]
    L: list[str] = ["# Optimizer step benchmark", ""]
    if quick:
        L += ["> **Quick smoke run** (`--quick`): small sizes, few rounds, heavyball eager. Not for conclusions.", ""]
    L += [
        "Written by `make bench` (`python -m benchmarks.run`); never edited by hand. Issue 4, part 1: what our "
        "optimizers cost per step today, against their peers, torch.optim.AdamW and the memory-bandwidth floor.",
        "",
        f"- **Date:** {raw['start']}; measuring took {raw['wall_s'] / 60:.1f} min.",
        f"- **Machine:** {m['cpu']} (from /proc/cpuinfo), {m['cores']} cores, {m['mem_gib']} GiB; shared: load "
        f"average {raw['load_start'][0]:.1f} at the start, {raw['load_end'][0]:.1f} at the end.",
        f"- **Software:** torch {libs['torch']['version']}, Python {m['python']}; torch threads per worker: "
        f"{raw['threads']}; allocator: {'warm heap' if raw.get('malloc', 'warm') == 'warm' else 'glibc defaults'}.",
        f"- **Ours measured from:** {raw.get('git_start', 'unknown')}"
        + (
            f" (at the end: {raw['git_end']})"
            if raw.get("git_end", raw.get("git_start")) != raw.get("git_start")
            else ""
        )
        + ".",
        "- **Peers:** "
        + ", ".join(
            f"{PEER_TITLE[k]} {libs[k]['version']}" + (" (not importable)" if libs[k]["error"] else "")
            for k in PEER_KEYS
        )
        + ".",
        f"- **Memory bandwidth:** {_med(bw):.1f} GB/s, median over {len(bw)} rounds (each round: the best of 5 "
        f"in-place triads `a.add_(b, alpha=2)` on 2 × 128 MiB float32, 3 streams; range {min(bw):.1f}–{max(bw):.1f}).",
        "",
        "Ratios below 1 mean ours is faster. **×P** = bytes as a multiple of the parameters' bytes (float32).",
        "",
        "## Summary: ours (default path) against each peer, the floor and AdamW",
        "",
        *_findings(raw),
        "",
        *_summary(raw),
        "",
        "— : the peer has no such rule. The default path is `foreach=None`: on the CPU, host scalars (Python "
        "floats) in torch's fused in-place ops, small tensors together in cache-sized foreach batches, large ones one "
        "by one.",
        "",
        "## The fused path (`fused=True`: hand-fused C++/OpenMP kernels)",
        "",
        "fused ÷ fastest peer is the ratio to the fastest peer that has the rule (the largest of the ratios).",
        "",
        *_summary_fused(raw),
        "",
        "![benchmark chart](benchmarks.png)",
        "",
        "## How it is measured",
        "",
        "- **One process per comparison.** Each (parameter set, rule) runs in a fresh subprocess that builds every "
        "implementation of the rule (ours default, ours `foreach=True`, each peer that has the rule, AdamW fused as "
        "yardstick), each on its own copy of the same float32 parameters and gradients (seeded `randn`, θ·0.1 "
        "and g·0.01). torch.optim.AdamW's fused / foreach / for-loop paths get a process of their own per set.",
        "- **Warm-up, then interleaved rounds.** Every implementation takes a few untimed steps first (state "
        "allocation; heavyball compiles). Then each round runs every implementation in turn (starting one further "
        "along each round) for a few steps (about "
        + ("0.25 s" if not quick else "0.02 s")
        + " of work, at least one), and ends with a bandwidth triad. A round's time is the median of its steps; "
        "a reported time is the median over rounds, and every ratio (ours ÷ peer, ÷ floor, ÷ AdamW fused) is "
        "taken within each round and then the median over rounds. Absolute times are never compared across runs.",
        "- **Gradients** are assigned before the clock starts (heavyball releases `p.grad` after each step). "
        "Everything is float32 on CPU.",
        f"- **Threads: {raw['threads']}.** This machine's 2 cores are shared with other jobs. With 2 OpenMP "
        "threads a step that loses one core to another process waits for it (the same 3 ms step measured 3 ms to "
        "3 s); with one thread the rounds agree within tens of percent. `--threads 2` measures the other way.",
        "- **Allocator: "
        + ("a warm heap" if raw.get("malloc", "warm") == "warm" else "glibc's defaults")
        + ".** Most implementations allocate temporaries every step. With glibc's adaptive defaults, whether "
        "freed temporaries stay in the heap or go back to the OS (to be faulted in again, page by page, at the "
        "next step) depends on what the process allocated before: in two runs the same holocron AdEMAMix step on "
        "ResNet-50 took 105 ms and 290 ms, the slow one touching 3.2×P of fresh pages per step. Timed workers "
        "therefore run with `MALLOC_MMAP_THRESHOLD_=32 MiB` (glibc's largest) and a trim threshold that is never "
        "reached: every block under 32 MiB is reused from the heap, as in a long training loop; the `page faults "
        "×P` column checks it (pages first touched per timed step, ×4 KiB ÷ parameter bytes; ~0 on a warm heap). "
        "What the temporaries would cost without that is the transient-memory column. `--malloc default` "
        "measures under glibc's defaults.",
        "- **Common hyperparameters**: lr = 1e-3 and weight decay 1e-2 for every implementation (decay on, so its "
        "code path is timed), LARS momentum 0.9, everything else each library's default; where a peer's default "
        "would run a different rule the table's last column names the switch (timm Lamb's global grad-norm "
        "clipping off, timm AdaBelief's rectification off, pytorch_optimizer AdaBelief's L2 decay as ours).",
        "- **Transient memory** is the peak resident memory during one step minus the resident memory before it, "
        "after the timing, in the same process: glibc's mmap threshold is pinned at one page (so a freed block "
        "leaves RSS at once) and the heap is trimmed before each step; the peak (VmHWM) is reset through "
        "`/proc/self/clear_refs`. A calibration step that allocates exactly one parameter-sized set of "
        "temporaries (`torch._foreach_mul(params, 2)`) measures "
        + ", ".join(f"{v:.2f}×P on {impls.SIZES[s][0]}" for s, v in calib.items())
        + " (blocks count in whole pages: the small set's 36–43 KiB tensors round up).",
        "",
        "### Byte floors",
        "",
        "The floor is the time to move the bytes a rule cannot avoid, at the triad's bandwidth of the same round: "
        "streams × 4 bytes × params ÷ bandwidth. A stream is one full read or write of a parameter-sized float32 "
        "array. Elementwise rules need one pass (params read + write, gradient read, each state buffer read + "
        "write); rules that need a per-tensor reduction before the update (norms, cosines, TAdam's weight) need "
        "two, counted as below. 0-d state (the step, TAdam's W) is free.",
        "",
        "| rule | streams | count |",
        "|---|---|---|",
        *[
            f"| {impls.BASE_RULES[r].cls if r != 'adamw' else 'AdamW'} | {f.streams} | {f.why} |"
            for r, f in impls.FLOORS.items()
        ],
        "",
        "On the 1M set every buffer (4 MB) fits the 32 MiB last-level cache, so the floor there (from DRAM "
        "bandwidth) is loose: ÷ floor below 1 is possible.",
        "",
        "## torch.optim.AdamW (the yardstick)",
        "",
        *_rule_table("adamw", raw),
        "",
        "## Per rule",
        "",
        "Columns: `ours ÷ it` and `ours foreach ÷ it` compare against the row's implementation (medians over the "
        "rounds; in brackets the first and third quartile of the per-round ratio, which shows how much the shared "
        "machine moved it); `first step` is the first warm-up step (state allocation, compilation).",
        "",
    ]
    for rule in (r for r in impls.FLOORS if r != "adamw"):
        f = impls.FLOORS[rule]
        L += [f"### {impls.BASE_RULES[rule].cls} (floor: {f.streams} streams)", "", *_rule_table(rule, raw), ""]
    if raw["sweep"]:
        L += ["## Scaling of ours (default path)", "", *_sweeps(raw)]
    L += ["## Peers", "", "| library | version | imports here | how |", "|---|---|---|---|"]
    for k in PEER_KEYS:
        ok = "yes" if not libs[k]["error"] else f"no: {libs[k]['error']}"
        L.append(f"| {PEER_TITLE[k]} | {libs[k]['version']} | {ok} | {_PEER_NOTES[k]} |")
    L += [
        "",
        "`make bench` installs them into `.venv` with `pip install --no-deps` (torch is never upgraded; the target "
        "checks `torch.__version__` after the install).",
        "",
    ]
    failed = [
        f"- {size} {rule}: {res['error']}"
        for size, rules in raw["compare"].items()
        for rule, res in rules.items()
        if "error" in res and "impls" not in res
    ]
    if failed:
        L += ["## Workers that failed", "", *failed, ""]
    return "\n".join(L)


# ---- chart -------------------------------------------------------------------------------------------------


def _chart(raw: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s for s in SIZE_ORDER if s in raw["compare"]]
    has_sweep = bool(raw["sweep"])
    nrows = len(sizes) + (1 if has_sweep else 0)
    fig = plt.figure(figsize=(13, 4.3 * nrows), layout="constrained")
    grid = fig.add_gridspec(nrows, 2)
    title = "Optimizer step time ÷ byte floor (lower is better; 1 = moving the unavoidable bytes at triad bandwidth)"
    if raw["quick"]:
        title = "QUICK SMOKE RUN: " + title
    fig.suptitle(
        title + f"\n{raw['machine']['cpu']}, torch {raw['libraries']['torch']['version']}, "
        f"{raw['threads']} thread(s), {raw['start']}",
        fontsize=11,
    )
    rules = [r for r in impls.FLOORS if r != "adamw"]
    handles: dict[str, Any] = {}
    for row, size in enumerate(sizes):
        ax = fig.add_subplot(grid[row, :])
        width = 0.8 / len(BAR_KEYS)
        for j, key in enumerate(BAR_KEYS):
            xs, ys = [], []
            for i, rule in enumerate(rules):
                res = raw["compare"][size].get(rule)
                if res and "impls" in res and _ok(res, key):
                    xs.append(i + (j - (len(BAR_KEYS) - 1) / 2) * width)
                    ys.append(Stats(rule, res).over_floor(key))
            if not xs:
                continue
            label = {"ours": "ours (default)", "ours-foreach": "ours foreach=True"}.get(key, PEER_TITLE.get(key, key))
            bars = ax.bar(xs, ys, width, label=label, color=COLORS[key])
            handles.setdefault(label, bars)
            if key == "ours":
                ax.bar_label(bars, [f"{y:.1f}" for y in ys], fontsize=7, padding=1)
        ax.axhline(1, color="0.5", lw=0.8)
        adamw = raw["compare"][size].get("adamw")
        if adamw and _ok(adamw, impls.ADAMW_FUSED):
            y = Stats("adamw", adamw).over_floor(impls.ADAMW_FUSED)
            ax.axhline(y, color="k", ls="--", lw=1)
            ax.text(
                -0.48,
                y,
                f"AdamW fused: {y:.1f}",
                va="bottom",
                ha="left",
                fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.7, "lw": 0},
            )
        ax.set_yscale("log")
        ax.set_xlim(-0.5, len(rules) - 0.5)
        ax.set_xticks(range(len(rules)), [impls.BASE_RULES[r].cls for r in rules])
        ax.set_ylabel("step time ÷ floor (log)")
        res0 = next((r for r in raw["compare"][size].values() if "numel" in r), None)
        ax.set_title(_size_title(size, res0) if res0 else size, fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=len(handles), fontsize=9)
    if has_sweep:
        ax_n, ax_t = fig.add_subplot(grid[nrows - 1, 0]), fig.add_subplot(grid[nrows - 1, 1])
        for c, (rule, series) in zip(("#1f77b4", "#d62728"), raw["sweep"].items()):
            name = impls.BASE_RULES[rule].cls
            if "points" in series.get("numel", {}):
                pts = _sweep_points(rule, series["numel"])
                xs = [p["numel"] for p in pts]
                ax_n.plot(xs, [p["s"] * 1e3 for p in pts], "o-", color=c, label=f"{name} ours")
                ax_n.plot(xs, [p["floor_s"] * 1e3 for p in pts], ":", color=c, label=f"{name} floor")
            if "points" in series.get("tensors", {}):
                pts = _sweep_points(rule, series["tensors"])
                xs = [p["tensors"] for p in pts]
                a, b, _ = _fit(xs, [p["s"] for p in pts])
                ax_t.plot(xs, [p["s"] * 1e3 for p in pts], "o", color=c, label=f"{name} ours")
                ax_t.plot(
                    xs, [(a + b * x) * 1e3 for x in xs], "-", color=c, lw=1, label=f"fit: {b * 1e6:.0f} µs/tensor"
                )
        ax_n.set_xscale("log")
        ax_n.set_yscale("log")
        ax_n.set_xlabel("parameters (float32)")
        ax_n.set_ylabel("ms per step (log)")
        ax_n.set_title("size sweep, ours default path", fontsize=10)
        ax_n.grid(which="both", alpha=0.3)
        ax_n.legend(fontsize=8)
        n_fixed = next(
            (
                s["tensors"]["points"][0]["numel"]
                for s in raw["sweep"].values()
                if "tensors" in s and "points" in s["tensors"]
            ),
            0,
        )
        ax_t.set_xlabel("tensors")
        ax_t.set_ylabel("ms per step")
        ax_t.set_title(f"tensor-count sweep at {n_fixed:.0e} parameters, ours default path", fontsize=10)
        ax_t.grid(alpha=0.3)
        ax_t.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(raw: dict[str, Any], md: Path, png: Path) -> tuple[Path, Path]:
    md.write_text(_markdown(raw) + "\n")
    _chart(raw, png)
    return md, png
