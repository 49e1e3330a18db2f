"""`make gpu DEVICE=cpu`: the dry run of the CUDA command (benchmarks/gpu.py), so that `make gpu` is known to work
before a GPU is lent. The same code as on CUDA, on small sets; what needs CUDA (sync checks, CUDA graphs, the CUDA
memory counters) is reported as not checkable. It writes into a temporary folder, never over docs/.

Runtime: about 40 s on 2 idle cores (one run, shared by the tests below), plus a few seconds for the restart test."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu, gpu_report

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / name for name in (gpu_report.MD, gpu_report.PNG, gpu_report.JSON)]


def _snapshot() -> dict[Path, bytes | None]:
    return {p: p.read_bytes() if p.exists() else None for p in DOCS}


@pytest.fixture(scope="module")
def dry_run():
    """One `make gpu DEVICE=cpu` (setup taken as done: -o keeps make from re-running it inside the suite)."""
    if shutil.which("make") and (ROOT / ".venv" / "bin" / "python").exists():
        cmd = ["make", "--no-print-directory", "-o", ".venv/.installed", "gpu", "DEVICE=cpu"]
    else:  # a suite run from another environment: the command `make gpu DEVICE=cpu` runs
        cmd = [sys.executable, "-m", "benchmarks.gpu", "--device", "cpu"]
    before = _snapshot()
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.monotonic() - t0
    m = re.search(r"wrote (\S+)/benchmarks-cuda\.md", proc.stdout)
    out = Path(m.group(1)) if m else None
    yield proc, out, before, wall
    if out and out.name.startswith("holocron-gpu-dryrun-"):
        shutil.rmtree(out, ignore_errors=True)


def test_dry_run_passes_writes_a_temporary_report_and_leaves_docs_alone(dry_run):
    proc, out, before, wall = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert out is not None and out.is_dir(), proc.stdout[-2000:]
    assert ROOT / "docs" not in (out, *out.parents)
    assert _snapshot() == before  # the committed docs/benchmarks-cuda.* are never touched by a dry run
    for name in (gpu_report.MD, gpu_report.PNG, gpu_report.JSON):
        assert (out / name).stat().st_size > 0
    # progress is printed with timestamps
    assert re.search(r"^\[\d\d:\d\d:\d\d \+ *\d+\.\ds\] ", proc.stdout, re.M)
    print(f"dry run: {wall:.0f} s")


def test_dry_run_ran_every_check_and_timed_every_implementation(dry_run):
    proc, out, _, _ = dry_run
    assert out is not None, proc.stdout[-2000:]
    raw = json.loads((out / gpu_report.JSON).read_text())
    assert raw["done"] and raw["device"] == "cpu"
    # the suite's device tests, selected for the CPU (on CUDA: for cuda)
    assert raw["pytest"]["exit"] == 0 and raw["pytest"]["counts"].get("PASSED", 0) >= 1, raw["pytest"]
    assert "-k cpu" in raw["pytest"]["cmd"]
    checks = raw["checks"]
    assert set(checks) == set(raw["plan"]["checks"]) and len(checks) == 8 * sum(map(len, gpu.CHECKS.values()))
    for uid, rec in checks.items():
        if "/graph/" in uid:
            assert rec["status"] == "skip" and "CUDA device" in rec["detail"], (uid, rec)
        else:
            assert rec["status"] == "ok", (uid, rec)
        if "/no-sync/" in uid:
            assert rec["checked"] is False  # the CPU cannot detect a sync, and says so
    timed = raw["timed"]
    assert set(timed) == set(raw["plan"]["timed"])
    for uid, rec in timed.items():
        assert rec["status"] == "ok", (uid, rec)
        assert rec["s"] > 0 and rec["first_s"] > 0 and rec["bytes"] > 0 and rec["steps"] >= 2
    for s, d in raw["groups"]:  # every rule's default and fused path, and both AdamW yardsticks, in each set
        for rule in gpu.RULES:
            assert f"{s}/{d}/{rule}/ours" in timed and f"{s}/{d}/{rule}/ours-fused" in timed
        assert f"{s}/{d}/adamw/adamw-fused" in timed and f"{s}/{d}/adamw/adamw-foreach" in timed
        assert raw["copy"][f"{s}/{d}"]["gbps"] > 0
    assert {d for _, d in raw["groups"]} == {"fp32", "bf16"}
    assert all(r["status"] == "ok" for r in raw["prewarm"].values())


def test_the_report_names_the_device_and_has_every_section(dry_run):
    _, out, _, _ = dry_run
    assert out is not None
    md = (out / gpu_report.MD).read_text()
    assert md.startswith("# holocron-torch on CPU (dry run")
    for heading in ("## The test suite on the device", "## Checks per rule and path", "## Step time", "## Targets"):
        assert heading in md
    assert "Partial results" not in md
    assert md.count("| AdamW | AdamW fused |") == 2


def test_a_worker_that_dies_is_reported_and_the_units_left_run_in_a_new_one(tmp_path):
    """A unit that ends its process (as a CUDA fault would) is an error row; the next unit runs in a new worker."""
    args = argparse.Namespace(device="cpu", out=tmp_path, quick=False, rules=None)
    run = gpu.Run(args, gpu.DRY, gpu.Log())
    run.raw = {"checks": {}, "prewarm": {}, "timed": {}, "copy": {}}
    units = [
        {"id": "lamb/_exit/default", "rule": "lamb", "check": "_exit", "path": "default"},
        {"id": "lamb/graph/default", "rule": "lamb", "check": "graph", "path": "default"},
    ]
    lane = gpu.Lane("t", "checks", units, time.time() + 300, 120)
    run.save = lambda *a, **k: None  # no report here
    run.run_lanes([lane])
    shutil.rmtree(run.tmp, ignore_errors=True)
    assert run.raw["checks"]["lamb/_exit/default"]["status"] == "error"
    assert "worker exited 3" in run.raw["checks"]["lamb/_exit/default"]["detail"]
    assert run.raw["checks"]["lamb/graph/default"]["status"] == "skip"  # ran (on the CPU: skipped, with why)
    assert lane.restarts == 2


def test_the_device_tests_are_the_ones_taking_the_device_fixture():
    files = gpu.device_test_files()
    assert {"tests/test_step_for_step.py", "tests/test_compile.py", "tests/test_conformance.py"} <= set(files)
    assert "tests/test_gpu_dryrun.py" not in files
