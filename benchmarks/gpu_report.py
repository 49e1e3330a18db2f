"""benchmarks-cuda.md, .png and .json from the raw results of `make gpu` (benchmarks.gpu): rewritten as they come in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import impls
from .gpu_worker import CHECKS, PATHS, SETS

MD, PNG, JSON = "benchmarks-cuda.md", "benchmarks-cuda.png", "benchmarks-cuda.json"
#: rules whose update is one elementwise pass (impls.FLOORS): the issue's bandwidth target applies to them
ELEMENTWISE = tuple(r for r, f in impls.FLOORS.items() if "one fused pass" in f.why and r != "adamw")
TARGET_NUMEL = 25_000_000
TARGET_PCT = 80.0
SYMBOL = {"ok": "✓", "fail": "✗", "error": "E", "skip": "–", "not run": "·"}
CHECK_TITLE = {"f64": "f64", "f32": "f32", "f32-hypothesis": "f32 hyp", "no-sync": "no sync", "graph": "graph"}


def _device_name(raw: dict[str, Any]) -> str:
    env = raw.get("env", {})
    if raw["device"] == "cuda":
        return env.get("name", "CUDA device")
    return "CPU (dry run of the CUDA run)"


def _pct(rec: dict[str, Any], copy: dict[str, Any] | None) -> float | None:
    if rec.get("status") != "ok" or not copy:
        return None
    return 100 * rec["bytes"] / rec["s"] / 1e9 / copy["gbps"]


def _gib(x: float | None) -> str:
    return "—" if x is None else f"{x / 2**30:.2f}"


def _ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _header(raw: dict[str, Any]) -> list[str]:
    env = raw.get("env", {})
    name = _device_name(raw)
    lines = [f"# holocron-torch on {name}: CUDA checks and optimizer step time", ""]
    if not raw.get("done"):
        lines += [
            f"**Partial results**: the run had spent {raw.get('wall_s', 0):.0f} s of its {raw['budget_s']:.0f} s "
            "when this was written (it rewrites this file as results come in). Rows marked · were not reached.",
            "",
        ]
    if raw["device"] == "cuda":
        hw = (
            f"{name}, compute capability {env.get('capability', '?')}, {env.get('sms', '?')} SMs, "
            f"{env.get('mem_gib', '?')} GiB; CUDA {env.get('cuda', '?')}, Triton {env.get('triton', '?')}"
        )
    else:
        hw = "the CPU: this is the dry run (`make gpu DEVICE=cpu`), small sets, sync and graph checks not checkable"
    peers = ", ".join(f"{k} {v}" for k, v in raw.get("peers", {}).items())
    lines += [
        f"Written by `make gpu` ({raw['mode']}, budget {raw['budget_s']:.0f} s, {raw.get('wall_s', 0):.0f} s used) "
        f"on {raw['start']}: {hw}; torch {env.get('torch', '?')}, Python {raw.get('python', '?')}, "
        f"{raw.get('cpus', '?')} CPUs. Commit {raw.get('git', '?')}. Peers: {peers}.",
        "",
    ]
    return lines


def _pytest(raw: dict[str, Any]) -> list[str]:
    pt = raw.get("pytest")
    if not pt:
        return []
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(pt["counts"].items())) or "no results yet"
    lines = [
        "## The test suite on the device",
        "",
        f"`{pt['cmd']}` (Hypothesis profile `{pt['profile']}`): **{counts}** in {pt['seconds']:.0f} s"
        + (f"; {pt['note']}" if pt.get("note") else "")
        + (f"; pytest: {pt['summary']}" if pt.get("summary") else "")
        + ".",
        "",
    ]
    for line in pt.get("short") or [f"FAILED {t}" for t in pt["failed"]]:
        lines.append(f"- `{line[:300]}`")
    return lines + ([""] if pt.get("short") or pt["failed"] else [])


def _checks(raw: dict[str, Any]) -> list[str]:
    plan = raw.get("plan", {}).get("checks")
    if not plan:
        return []
    res = raw["checks"]
    paths = [p for p in PATHS if any(p in ps for ps in CHECKS.values())]
    counts: dict[str, int] = {}
    for uid in plan:
        st = res.get(uid, {}).get("status", "not run")
        counts[st] = counts.get(st, 0) + 1
    lines = [
        "## Checks per rule and path",
        "",
        "Per cell, each check on that path: **f64** / **f32** step for step against the float64 NumPy reference on "
        "fixed cases (float64 with every option set of tests/test_no_readback.py, float32 on a well-conditioned "
        "problem, as the suite's float32 test); **f32 hyp**: the suite's float32 property test (Hypothesis, "
        "drawn shapes, values, hyperparameters); **no sync**: every step() inside "
        '`torch.cuda.set_sync_debug_mode("error")` (the fused path from step 2: step 1 compiles), with each option '
        "set and a 0-d device tensor lr; **graph**: step() captured in a CUDA graph and replayed, equal to eager. "
        + " ".join(f"{v} {k}" for k, v in SYMBOL.items())
        + ".",
        "",
        f"Totals: {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}.",
        "",
        "| rule | " + " | ".join(paths) + " |",
        "|---|" + "---|" * len(paths),
    ]
    for rule in raw["rules"]:
        cells = []
        for p in paths:
            parts = []
            for c, ps in CHECKS.items():
                if p in ps:
                    st = res.get(f"{rule}/{c}/{p}", {}).get("status", "not run")
                    parts.append(f"{CHECK_TITLE[c]} {SYMBOL.get(st, st)}")
            cells.append(" · ".join(parts))
        lines.append(f"| {impls.BASE_RULES[rule].cls} | " + " | ".join(cells) + " |")
    bad = [(u, r) for u, r in res.items() if r["status"] in ("fail", "error")]
    unchecked = [u for u, r in res.items() if r["status"] == "ok" and r.get("checked") is False]
    lines.append("")
    if bad:
        lines += ["Failures and errors:", ""]
        lines += [f"- `{u}`: {r['status']}: {r.get('detail', '')}" for u, r in bad]
        lines.append("")
    if unchecked:
        lines += [f"No-sync checks that ran but could not detect a sync (not on CUDA): {len(unchecked)}.", ""]
    skipped = sorted({r.get("detail", "") for r in res.values() if r["status"] == "skip"})
    if skipped:
        lines += ["Skipped: " + "; ".join(skipped) + ".", ""]
    return lines


def _group_title(key: str, copy: dict[str, Any] | None) -> str:
    s, d = key.split("/")
    if not copy:
        return f"{SETS[s][0]}, {d}"
    n = copy["numel"]
    size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"
    size += f" params, {copy['tensors']} tensors"
    return f"{SETS[s][0]} ({size}), {d}: copy bandwidth {copy['gbps']:.0f} GB/s"


def _timed(raw: dict[str, Any]) -> list[str]:
    plan = raw.get("plan", {}).get("timed")
    if not plan:
        return []
    lines = [
        "## Step time",
        "",
        "Per (parameter set, dtype), one process alone on the device: the copy bandwidth (`dst.copy_(src)` of 1 GiB, "
        "bytes read + written, best of 10, CUDA events) measured first, then each implementation in turn on the same "
        "parameters and gradients, with its own state. **ms**: median step time over the timed steps (CUDA events "
        "around each `step()`; launches included). **% copy**: the rule's byte floor per step "
        "(`benchmarks/impls.py` FLOORS: parameter-sized streams × bytes per element × parameters) over the step time, "
        "as a share of the copy bandwidth. **÷ AdamW**: time per floor byte relative to torch's fused AdamW on the "
        "same set (below 1: faster per byte moved). **state ×P**: optimizer state over the parameters' bytes; "
        "**transient ×P**: the peak extra memory inside one step (`torch.cuda.max_memory_allocated`). **first**: the "
        "first step (state creation; on the fused path, compilation unless cached); **compile**: the fused path's "
        "first step in the cold compile run that ran alongside the checks.",
        "",
    ]
    groups: dict[str, list[str]] = {}
    for uid in plan:
        s, d, _, _ = uid.split("/")
        groups.setdefault(f"{s}/{d}", []).append(uid)
    for key, uids in groups.items():
        copy = raw["copy"].get(key)
        adamw = raw["timed"].get(f"{key}/adamw/{impls.ADAMW_FUSED}", {})
        base = adamw["s"] / adamw["bytes"] if adamw.get("status") == "ok" else None
        lines += [
            f"### {_group_title(key, copy)}",
            "",
            "| rule | implementation | ms | % copy | ÷ AdamW | state ×P | transient ×P | first s | compile s | note |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for uid in uids:
            s, d, rule, k = uid.split("/")
            rec = raw["timed"].get(uid, {"status": "not run"})
            name = "AdamW" if rule == "adamw" else impls.BASE_RULES[rule].cls
            label = rec.get("label", k)
            if rec.get("status") != "ok" or not copy:
                lines.append(
                    f"| {name} | {label} | — | — | — | — | — | — | — | {rec['status']}: {rec.get('detail', '')} |"
                )
                continue
            pb = rec["bytes"]
            pbytes = copy["numel"] * (2 if d == "bf16" else 4)
            pct = _pct(rec, copy)
            vs = f"{rec['s'] / pb / base:.2f}" if base else "—"
            tr = "—" if rec.get("transient_bytes") is None else f"{rec['transient_bytes'] / pbytes:.2f}"
            pre = raw["prewarm"].get(f"prewarm/{s}/{d}/{rule}", {}) if k == "ours-fused" else {}
            comp = f"{pre['first_s']:.1f}" if pre.get("status") == "ok" else "—"
            lines.append(
                f"| {name} | {label} | {_ms(rec['s'])} | {pct:.0f} | {vs} | {rec['state_bytes'] / pbytes:.2f} | {tr} "
                f"| {rec['first_s']:.2f} | {comp} | {rec['steps']} steps |"
            )
        lines.append("")
    return lines


def _targets(raw: dict[str, Any]) -> list[str]:
    """The issue's targets, computed from the numbers: >= 80% of the copy bandwidth for the elementwise rules at
    25M+ parameters, and faster than torch's fused AdamW per byte moved."""
    rows = []
    for key, copy in raw["copy"].items():
        if copy["numel"] < TARGET_NUMEL and raw["device"] == "cuda":
            continue
        adamw = raw["timed"].get(f"{key}/adamw/{impls.ADAMW_FUSED}", {})
        for rule in raw["rules"]:
            for k in ("ours", "ours-fused"):
                rec = raw["timed"].get(f"{key}/{rule}/{k}", {})
                if rec.get("status") != "ok":
                    continue
                pct = _pct(rec, copy)
                per_byte = (
                    rec["s"] / rec["bytes"] / (adamw["s"] / adamw["bytes"]) if adamw.get("status") == "ok" else None
                )
                bw = ("yes" if pct >= TARGET_PCT else "**no**") if rule in ELEMENTWISE else "n/a (two passes)"
                pb = "—" if per_byte is None else ("yes" if per_byte <= 1 else "**no**") + f" ({per_byte:.2f})"
                rows.append(f"| {key} | {impls.BASE_RULES[rule].cls} | {k} | {pct:.0f} | {bw} | {pb} |")
    if not rows:
        return []
    names = ", ".join(impls.BASE_RULES[r].cls for r in ELEMENTWISE)
    return [
        "## Targets",
        "",
        f"≥ {TARGET_PCT:.0f}% of the copy bandwidth for the elementwise rules ({names}) "
        f"at {TARGET_NUMEL / 1e6:.0f}M+ parameters, and no more time per byte moved than torch's fused AdamW.",
        "",
        "| set/dtype | rule | path | % copy | ≥ 80%? | ≤ AdamW fused per byte? |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def markdown(raw: dict[str, Any]) -> str:
    lines = _header(raw) + _pytest(raw) + _checks(raw) + _targets(raw) + _timed(raw)
    if raw.get("plan", {}).get("timed"):
        lines += [f"![step time as a share of copy bandwidth]({PNG})", ""]
    lines += [
        "Reproduce: `make gpu` on a CUDA machine (`make gpu GPU_ARGS=--quick`: under 3 minutes); "
        "`make gpu DEVICE=cpu` is the dry run. Code: benchmarks/gpu.py, gpu_worker.py, gpu_report.py.",
        "",
    ]
    return "\n".join(lines)


def chart(raw: dict[str, Any], path: Path) -> None:
    """Per (set, dtype): each rule's default and fused path as a share of the copy bandwidth, AdamW fused as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in (f"{s}/{d}" for s, d in raw["groups"]) if k in raw["copy"]]
    if not keys:
        return
    fig, axes = plt.subplots(len(keys), 1, figsize=(10, 2.6 * len(keys) + 0.6), squeeze=False)
    rules = raw["rules"]
    for ax, key in zip(axes[:, 0], keys):
        copy = raw["copy"][key]
        for j, (k, color) in enumerate((("ours", "#1f77b4"), ("ours-fused", "#08306b"))):
            vals = [_pct(raw["timed"].get(f"{key}/{r}/{k}", {}), copy) or 0.0 for r in rules]
            ax.bar(
                [i + (j - 0.5) * 0.38 for i in range(len(rules))],
                vals,
                0.38,
                color=color,
                label="default path" if k == "ours" else "fused=True",
            )
        adamw = _pct(raw["timed"].get(f"{key}/adamw/{impls.ADAMW_FUSED}", {}), copy)
        if adamw:
            ax.axhline(adamw, color="#d62728", lw=1, ls="--", label=f"AdamW fused ({adamw:.0f}%)")
        ax.set_xticks(range(len(rules)), [impls.BASE_RULES[r].cls for r in rules])
        ax.set_ylabel("% of copy bandwidth")
        ax.set_title(_group_title(key, copy), fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"holocron-torch step time on {_device_name(raw)} (byte floor ÷ step time ÷ copy bandwidth)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(raw: dict[str, Any], out: Path, *, chart_too: bool = False) -> None:
    """Write the JSON and the Markdown (each through a temporary file: a reader never sees half a file); the chart
    too when asked (it takes a second)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in ((JSON, json.dumps(raw, indent=1)), (MD, markdown(raw))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out / name)
    if chart_too:
        chart(raw, out / PNG)
