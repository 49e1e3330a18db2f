"""`make gpu`: every CUDA check and the CUDA benchmark in one command, with a time budget; `make gpu DEVICE=cpu` is
its dry run (small sets, the same code, what needs CUDA reported as not checkable).

    python -m benchmarks.gpu                        # on a CUDA machine: writes docs/benchmarks-cuda.{md,png,json}
    python -m benchmarks.gpu --quick                # under 3 minutes: fewer examples, steps and sets
    python -m benchmarks.gpu --device cpu           # the dry run: writes into a temporary folder
    python -m benchmarks.gpu --out DIR --budget 420 # elsewhere, within 7 minutes

Phase A (checks; about 40% of the budget), everything at once, since none of it is timed: the test suite's CUDA
parametrisation (pytest -k cuda over the tests that take the ``device`` fixture); per rule, path and dtype the
checks of benchmarks.gpu_worker (step for step against the reference, no host sync, CUDA-graph capture); and the
compilation of every fused path on the benchmark's sets, so that the timed run finds the kernels in
torch.compile's caches. Phase B (the rest): the timed run, one process at a time, alone on the GPU.

Progress is printed with timestamps; the report (Markdown, chart, raw JSON) is rewritten as results come in, so
that a run stopped from outside still leaves what it measured. A unit that fails is a row of the report; a worker
process that dies or overruns is restarted for the units left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import impls
from .gpu_worker import CHECKS
from .run import _git_state as git_state

ROOT = Path(__file__).resolve().parent.parent
RULES = tuple(r for r in impls.FLOORS if r != "adamw")


@dataclass
class Mode:
    """What a run measures and how long it may take."""

    name: str
    budget_s: float
    groups: list[tuple[str, str]]  # (set, dtype) in the order they are timed
    examples: int  # Hypothesis examples per float32 property check
    pytest_profile: str
    pytest_k_extra: str | None  # narrows the suite's device tests (the dry run takes one)
    timed: dict[str, Any]
    caps: dict[str, float]  # seconds one unit may take, per kind
    check_share: float = 0.4  # of the budget, for phase A
    heavyball_eager: bool = False


FULL = Mode(
    "full",
    540,
    [("resnet50", "fp32"), ("gpt1b", "fp32"), ("gpt1b", "bf16"), ("resnet50", "bf16")],
    examples=40,
    pytest_profile="ci",
    pytest_k_extra=None,
    timed={"warmup": 3, "min_steps": 5, "max_steps": 100, "target_s": 0.4, "copy_numel": 1 << 28},
    caps={"checks": 240, "timed": 90, "compiled": 240},
)
QUICK = Mode(
    "quick",
    170,
    [("resnet50", "fp32"), ("gpt1b", "fp32"), ("gpt1b", "bf16")],
    examples=8,
    pytest_profile="dev",
    pytest_k_extra=None,
    timed={"warmup": 2, "min_steps": 3, "max_steps": 30, "target_s": 0.12, "copy_numel": 1 << 28},
    caps={"checks": 120, "timed": 45, "compiled": 120},
    heavyball_eager=True,
)
DRY = Mode(
    "dry run",
    600,  # takes well under a minute on 2 idle cores; the budget only stops a run that hangs
    [("resnet50-head", "fp32"), ("gpt-tiny", "bf16")],
    examples=2,
    pytest_profile="dev",
    pytest_k_extra="lamb and default",
    timed={"warmup": 1, "min_steps": 2, "max_steps": 3, "target_s": 0.005, "copy_numel": 1 << 22},
    caps={"checks": 120, "timed": 60, "compiled": 60},
    heavyball_eager=True,
)


def _stamp(t0: float) -> str:
    return f"[{datetime.now(timezone.utc).strftime('%H:%M:%S')} +{time.monotonic() - t0:6.1f}s]"


class Log:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        print(f"{_stamp(self.t0)} {msg}", flush=True)


# ---- units -------------------------------------------------------------------------------------------------


def check_units(rules: list[str]) -> list[dict[str, Any]]:
    """Per rule every check on every path; the graph captures last (a failed capture can leave CUDA unusable)."""
    units = [
        {"id": f"{r}/{c}/{p}", "rule": r, "check": c, "path": p}
        for r in rules
        for c, paths in CHECKS.items()
        if c != "graph"
        for p in paths
    ]
    graphs = [{"id": f"{r}/graph/{p}", "rule": r, "check": "graph", "path": p} for r in rules for p in CHECKS["graph"]]
    return units + graphs


def peers_installed() -> dict[str, str]:
    return {lib: impls.version(lib) for lib in impls.PEER_LIBRARIES}


def timed_units(
    groups: list[tuple[str, str]], rules: list[str], peers: dict[str, str], one_peer_each: bool = False
) -> list[dict[str, Any]]:
    """Per (set, dtype): the AdamW yardsticks, each rule's default path, each rule's fused path, then the peers that
    are installed (``one_peer_each``: each library once, the dry run): the order in which a short budget keeps what
    matters most."""
    out = []
    for s, d in groups:

        def unit(rule: str, key: str, s: str = s, d: str = d) -> dict[str, Any]:
            return {"id": f"{s}/{d}/{rule}/{key}", "set": s, "dtype": d, "rule": rule, "key": key}

        out += [unit("adamw", impls.ADAMW_FUSED), unit("adamw", "adamw-foreach")]
        out += [unit(r, "ours") for r in rules] + [unit(r, "ours-fused") for r in rules]
        seen: set[str] = set()
        for r in rules:
            for impl in impls.implementations(r):
                lib = impl.library
                if lib in peers and peers[lib] != "not installed" and (lib not in seen or not one_peer_each):
                    out.append(unit(r, impl.key))
                    seen.add(lib)
    return out


def prewarm_units(groups: list[tuple[str, str]], rules: list[str]) -> list[list[dict[str, Any]]]:
    """One list per (set, dtype): the fused path of every rule."""
    return [[{"id": f"prewarm/{s}/{d}/{r}", "set": s, "dtype": d, "rule": r} for r in rules] for s, d in groups]


def device_test_files() -> list[str]:
    """The test files with a test that takes the ``device`` fixture (tests/conftest.py adds cuda where there is one)."""
    pattern = re.compile(r"def test_\w+\([^)]*\bdevice\b")
    return sorted(f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if pattern.search(p.read_text()))


# ---- processes ---------------------------------------------------------------------------------------------


@dataclass
class Lane:
    """A queue of units of one kind, worked off by one worker process at a time (a new one after a crash)."""

    name: str
    kind: str
    units: list[dict[str, Any]]
    deadline: float  # wall clock (time.time())
    cap: float  # seconds a unit may take
    cap_compiled: float | None = None  # ... a fused-path unit (it may compile), where different
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    out: Path | None = None
    log: Path | None = None
    pos: int = 0
    started: dict[str, float] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    restarts: int = 0
    done_at_spawn: int = 0

    def cap_of(self, uid: str) -> float:
        compiled = uid.endswith("/ours-fused")  # heavyball compiles too, but gets the plain cap: it comes last
        return self.cap_compiled if compiled and self.cap_compiled else self.cap

    def todo(self) -> list[dict[str, Any]]:
        return [u for u in self.units if u["id"] not in self.done]


class Run:
    def __init__(self, args: argparse.Namespace, mode: Mode, log: Log) -> None:
        self.args, self.mode, self.log = args, mode, log
        self.tmp = Path(tempfile.mkdtemp(prefix="holocron-gpu-"))
        self.raw: dict[str, Any] = {}
        self.dirty = True
        self.last_write = self.last_chart = 0.0

    # -- the report, rewritten as results come in
    def save(self, force: bool = False, chart: bool = False) -> None:
        """Rewrite the report: at most every 2 s while results come in, the chart every 30 s (and when asked)."""
        if not (force or (self.dirty and time.monotonic() - self.last_write > 2.0)):
            return
        from .gpu_report import write

        self.raw["wall_s"] = time.monotonic() - self.log.t0
        chart = chart or time.monotonic() - self.last_chart > 30.0
        write(self.raw, self.args.out, chart_too=chart)
        self.dirty, self.last_write = False, time.monotonic()
        if chart:
            self.last_chart = self.last_write
            self.copy_logs()

    def copy_logs(self) -> None:
        """Outside docs/, the logs go beside the report: gpu-pytest.log, and gpu-workers.log (the tracebacks of the
        units that failed, each worker's output)."""
        if self.args.out.resolve() == (ROOT / "docs").resolve():
            return
        pytest_log = self.tmp / "pytest.log"
        if pytest_log.exists():
            (self.args.out / "gpu-pytest.log").write_text(pytest_log.read_text(errors="replace")[-4_000_000:])
        parts = [
            f"==== {p.name}\n{p.read_text(errors='replace')[-1_000_000:]}" for p in sorted(self.tmp.glob("*-*.log"))
        ]
        (self.args.out / "gpu-workers.log").write_text("\n".join(parts)[-8_000_000:])  # within what a caller fetches

    def record(self, lane: Lane, rec: dict[str, Any]) -> None:
        event = rec.pop("event")
        if event == "env":
            self.raw.setdefault("env", {}).update(rec)
            return
        if event == "copy":
            self.raw["copy"][f"{rec['set']}/{rec['dtype']}"] = rec
            self.log(f"copy bandwidth ({rec['set']}, {rec['dtype']}): {rec['gbps']:.0f} GB/s")
            self.dirty = True
            return
        uid = rec.pop("unit")
        if event == "start":
            lane.started[uid] = time.monotonic()
            return
        lane.done.add(uid)
        section = {"checks": "checks", "prewarm": "prewarm", "timed": "timed"}[lane.kind]
        self.raw[section][uid] = rec
        self.dirty = True
        extra = ""
        if lane.kind == "timed" and rec.get("status") == "ok":
            extra = f" {rec['s'] * 1e3:.3f} ms/step, first step {rec['first_s']:.2f} s"
        elif lane.kind == "prewarm" and rec.get("status") == "ok":
            extra = f" first step {rec['first_s']:.1f} s"
        detail = f": {rec['detail']}" if rec.get("detail") and rec.get("status") != "ok" else ""
        self.log(f"{lane.name} {uid}: {rec.get('status')}{extra} ({rec.get('seconds', 0):.1f} s){detail}")

    # -- workers
    def _spawn(self, lane: Lane) -> None:
        lane.restarts += 1
        lane.done_at_spawn = len(lane.done)
        spec = self.tmp / f"{lane.name}-{lane.restarts}.json"
        lane.out = self.tmp / f"{lane.name}-{lane.restarts}.jsonl"
        lane.log = self.tmp / f"{lane.name}-{lane.restarts}.log"
        settings = {**self.mode.timed, "examples": self.mode.examples, "heavyball_eager": self.mode.heavyball_eager}
        spec.write_text(
            json.dumps(
                {
                    "device": self.args.device,
                    "kind": lane.kind,
                    "units": lane.todo(),
                    "deadline": lane.deadline,
                    "settings": settings,
                }
            )
        )
        lane.out.touch()
        lane.pos = 0
        env = {**os.environ, **_device_env(self.args.device), **lane.env, "PYTHONPATH": _pythonpath()}
        with open(lane.log, "w") as logf:
            lane.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.gpu_worker", str(spec), str(lane.out)],
                cwd=ROOT,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: killed with everything it started
            )

    def _read(self, lane: Lane) -> None:
        assert lane.out is not None
        with open(lane.out) as f:
            f.seek(lane.pos)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        lane.pos += len(complete)
        for line in complete.splitlines():
            if line.strip():
                self.record(lane, json.loads(line))

    def _fail_current(self, lane: Lane, why: str) -> None:
        current = [u for u in lane.started if u not in lane.done]
        tail = ""
        if lane.log and lane.log.exists():
            lines = [x for x in lane.log.read_text(errors="replace").splitlines() if x.strip()]
            tail = " | ".join(lines[-3:])[-400:]
        for uid in current:
            self.record(lane, {"event": "done", "unit": uid, "status": "error", "detail": f"{why}: {tail}"})

    def step(self, lane: Lane) -> bool:
        """Advance one lane; False once it has nothing left."""
        if lane.proc is None:
            if not lane.todo():
                return False
            if time.time() > lane.deadline:
                for u in lane.todo():
                    self.record(
                        lane, {"event": "done", "unit": u["id"], "status": "not run", "detail": "time budget spent"}
                    )
                return False
            self._spawn(lane)
            return True
        self._read(lane)
        code = lane.proc.poll()
        if code is None:
            running = [(u, t) for u, t in lane.started.items() if u not in lane.done]
            cap = lane.cap_of(running[0][0]) if running else 0.0
            overrun = bool(running) and time.monotonic() - running[0][1] > cap
            if overrun or time.time() > lane.deadline + 5:
                _kill(lane.proc)
                self._read(lane)
                why = f"stopped after {cap:.0f} s (the unit's cap)" if overrun else "stopped: time budget spent"
                self._fail_current(lane, why)
                lane.proc = None
            return True
        self._read(lane)
        if any(u not in lane.done for u in lane.started):
            self._fail_current(lane, f"worker exited {code}")
        elif lane.todo() and len(lane.done) == lane.done_at_spawn:
            self._fail_all(lane, f"worker exited {code} before its first unit")
        lane.proc = None
        return bool(lane.todo())

    def _fail_all(self, lane: Lane, why: str) -> None:
        lines = lane.log.read_text(errors="replace").strip().splitlines() if lane.log else []
        tail = " | ".join(lines[-3:])[-400:]
        for u in lane.todo():
            self.record(lane, {"event": "done", "unit": u["id"], "status": "error", "detail": f"{why}: {tail}"})

    def run_lanes(self, lanes: list[Lane], pytest_proc: PytestRun | None = None) -> None:
        active = list(lanes)
        while active or (pytest_proc and not pytest_proc.finished):
            active = [lane for lane in active if self.step(lane)]
            if pytest_proc and not pytest_proc.finished:
                pytest_proc.poll()
                self.raw["pytest"] = pytest_proc.summary()
                self.dirty = True
            self.save()
            time.sleep(0.25)


def _pythonpath() -> str:
    """The checkout first (holocron_torch, reference, tests, benchmarks without an install), then what was there."""
    extra = os.environ.get("PYTHONPATH")
    return str(ROOT) + (os.pathsep + extra if extra else "")


def _device_env(device: str) -> dict[str, str]:
    """On the CPU (the dry run, beside each other on few cores) one thread per process: OpenMP's spinning threads
    slow each other down badly when processes outnumber the cores."""
    return {"OMP_NUM_THREADS": "1"} if device == "cpu" else {}


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), including those that started a session of their own (the fused
    path's C++ build runs in such a child): killing the process group alone would leave them running."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL a worker, its process group and everything it started."""
    below = _descendants(proc.pid)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class PytestRun:
    """The suite's device tests for one device, in a subprocess; its verbose lines are followed as they come."""

    LINE = re.compile(
        r"(tests/\S+::\S+).*?\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b|"
        r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*?(tests/\S+::\S+)"
    )

    def __init__(self, run: Run, deadline: float) -> None:
        self.run, self.deadline, self.log = run, deadline, run.log
        files = device_test_files()
        expr = run.args.device + (f" and ({run.mode.pytest_k_extra})" if run.mode.pytest_k_extra else "")
        cmd = [sys.executable, "-m", "pytest", *files, "-k", expr, "-v", "-rfE", "--tb=short", "-p", "no:cacheprovider"]
        workers = _pytest_workers(run.args.device)
        if workers > 1:
            cmd += ["-n", str(workers)]
        self.cmd = cmd
        self.path = run.tmp / "pytest.log"
        env = {**os.environ, **_device_env(run.args.device), "PYTHONPATH": _pythonpath()}
        env["HYPOTHESIS_PROFILE"] = run.mode.pytest_profile
        env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
        self.t0 = time.monotonic()
        with open(self.path, "w") as f:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.pos = 0
        self.results: dict[str, str] = {}
        self.finished = False
        self.note = ""
        self.log(f"pytest: {' '.join(cmd[1:])} (HYPOTHESIS_PROFILE={run.mode.pytest_profile})")

    def poll(self) -> None:
        code = self.proc.poll()  # first: the text read after it holds everything a finished run wrote
        text = self.path.read_text(errors="replace")
        end = text.rfind("\n") + 1  # whole lines only: pytest writes a test's id, then its outcome when it ends
        new, self.pos = text[self.pos : end], max(self.pos, end)
        for line in new.splitlines():
            m = self.LINE.search(line)
            if m:
                test, status = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
                if test not in self.results:
                    self.results[test] = status
                    if status in ("FAILED", "ERROR"):
                        self.log(f"pytest {status}: {test}")
        if code is None and time.time() > self.deadline:
            _kill(self.proc)
            self.note = f"stopped at the checks' time limit after {time.monotonic() - self.t0:.0f} s"
            code = self.proc.returncode
        if code is not None and not self.finished:
            self.finished = True
            self.code = code
            counts = self.summary()["counts"]
            self.log(f"pytest finished (exit {code}) in {time.monotonic() - self.t0:.0f} s: {counts} {self.note}")

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for status in self.results.values():
            counts[status] = counts.get(status, 0) + 1
        text = self.path.read_text(errors="replace") if self.path.exists() else ""
        tail = [x for x in text.splitlines() if x.startswith(("FAILED ", "ERROR "))][:40]
        summary_line = next((x for x in reversed(text.splitlines()) if re.search(r"\d+ (passed|failed)", x)), "")
        return {
            "cmd": " ".join(["python", *self.cmd[1:]]),
            "profile": self.run.mode.pytest_profile,
            "counts": counts,
            "failed": [t for t, s in self.results.items() if s in ("FAILED", "ERROR")],
            "short": tail,
            "summary": summary_line.strip("= "),
            "exit": getattr(self, "code", None),
            "note": self.note,
            "seconds": time.monotonic() - self.t0,
        }


def _pytest_workers(device: str) -> int:
    import importlib.util

    if device != "cuda" or importlib.util.find_spec("xdist") is None:
        return 1
    return max(1, min(6, (os.cpu_count() or 1) // 3))


# ---- the run -----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    mode = DRY if args.device == "cpu" else QUICK if args.quick else FULL
    budget = args.budget or mode.budget_s
    log = Log()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(f"make gpu: no CUDA device here (torch {torch.__version__}); `make gpu DEVICE=cpu` is the dry run")
            return 2
    rules = list(args.rules or RULES)
    peers = peers_installed()
    cpus = os.cpu_count() or 1
    start = time.time()
    deadline = start + budget
    checks_deadline = start + mode.check_share * budget
    r = Run(args, mode, log)
    r.raw = {
        "mode": mode.name,
        "device": args.device,
        "budget_s": budget,
        "start": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_state(),
        "python": sys.version.split()[0],
        "cpus": cpus,
        "peers": peers,
        "groups": [list(g) for g in mode.groups],
        "rules": rules,
        "pytest": None,
        "checks": {},
        "prewarm": {},
        "timed": {},
        "copy": {},
        "plan": {},
        "done": False,
        "out": str(args.out),
    }
    log(
        f"make gpu ({mode.name}) on {args.device}: budget {budget:.0f} s, checks until +{mode.check_share * budget:.0f}"
    )
    log(f"writing {args.out}; peers: {peers}")
    lanes: list[Lane] = []
    pytest_run = None
    compile_env = {"TORCHINDUCTOR_COMPILE_THREADS": "2"}  # the prewarm lanes compile side by side
    if not args.skip_checks:
        units = check_units(rules)
        r.raw["plan"]["checks"] = [u["id"] for u in units]
        n = max(1, min(len(rules), cpus // 2))
        for i in range(n):
            mine = [u for u in units if rules.index(u["rule"]) % n == i]
            lanes.append(
                Lane(
                    f"checks{i}",
                    "checks",
                    mine,
                    checks_deadline,
                    mode.caps["checks"],
                    {"TORCHINDUCTOR_COMPILE_THREADS": "1"},
                )
            )
        pytest_run = PytestRun(r, checks_deadline)
    if not args.skip_bench:
        pre = prewarm_units(mode.groups, rules)
        n = max(1, min(len(pre), cpus // 4))
        for i in range(n):
            mine = [u for j, group in enumerate(pre) if j % n == i for u in group]
            lanes.append(Lane(f"prewarm{i}", "prewarm", mine, checks_deadline, budget, env=compile_env))
    r.save(force=True)
    r.run_lanes(lanes, pytest_run)
    if pytest_run:
        r.raw["pytest"] = pytest_run.summary()
    r.save(force=True, chart=True)
    if not args.skip_bench:
        units = timed_units(mode.groups, rules, peers, one_peer_each=args.device == "cpu")
        r.raw["plan"]["timed"] = [u["id"] for u in units]
        units = _skip_uncompiled(r, units)
        log(f"timed run: {len(units)} units until +{budget:.0f} s")
        lane = Lane("timed", "timed", units, deadline, mode.caps["timed"], mode.caps["compiled"], env=compile_env)
        r.run_lanes([lane])
    r.raw["done"] = True
    r.save(force=True, chart=True)
    shutil.rmtree(r.tmp, ignore_errors=True)  # the workers' files (their logs are beside the report, outside docs/)
    bad = _failures(r.raw)
    log(f"wrote {args.out}/benchmarks-cuda.md, .png, .json ({r.raw['wall_s']:.0f} s); {len(bad)} failure(s)")
    for line in bad[:30]:
        print("  " + line)
    return 1 if bad else 0


def _skip_uncompiled(r: Run, units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """On CUDA, a fused unit whose compilation did not finish in the prewarm is not timed (it would spend the budget
    compiling): its row says so, and the prewarm's row says why."""
    if r.args.device != "cuda":
        return units
    keep = []
    for u in units:
        pre = r.raw["prewarm"].get(f"prewarm/{u['set']}/{u['dtype']}/{u['rule']}", {})
        if u["key"] == "ours-fused" and pre.get("status") != "ok":
            why = f"not compiled in the prewarm ({pre.get('status', 'not run')}: {pre.get('detail', '')})"
            r.raw["timed"][u["id"]] = {"status": "not run", "detail": why}
        else:
            keep.append(u)
    return keep


def _failures(raw: dict[str, Any]) -> list[str]:
    """What makes `make gpu` exit 1: a failed test or check, or an error timing ours or torch's AdamW (a peer that
    cannot run is reported, not a failure)."""
    out = []
    pt = raw.get("pytest") or {}
    out += [f"pytest: {t}" for t in pt.get("failed", [])]
    if pt and pt.get("exit") not in (0, None) and not pt.get("failed"):
        out.append(f"pytest exited {pt.get('exit')} {pt.get('note', '')}")
    out += [
        f"check {u}: {r['status']}: {r.get('detail', '')}"
        for u, r in raw["checks"].items()
        if r["status"] in ("fail", "error")
    ]
    for u, r in raw["timed"].items():
        if r["status"] in ("fail", "error") and u.split("/")[-1] in (
            "ours",
            "ours-fused",
            impls.ADAMW_FUSED,
            "adamw-foreach",
        ):
            out.append(f"timed {u}: {r['status']}: {r.get('detail', '')}")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the dry run (small sets)")
    p.add_argument("--quick", action="store_true", help="under 3 minutes: fewer examples, steps and sets")
    p.add_argument("--budget", type=float, help="seconds for the whole run (default: 540 full, 170 quick)")
    p.add_argument("--out", type=Path, help="folder for benchmarks-cuda.{md,png,json} (default docs/; dry run: temp)")
    p.add_argument("--rules", nargs="*", choices=RULES, help="only these rules")
    p.add_argument("--skip-checks", action="store_true", help="only the benchmark")
    p.add_argument("--skip-bench", action="store_true", help="only the checks")
    p.add_argument("--from-json", type=Path, help="rewrite the report from a saved benchmarks-cuda.json")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "docs" if args.device == "cuda" else Path(tempfile.mkdtemp(prefix="holocron-gpu-dryrun-"))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        from .gpu_report import write

        write(json.loads(args.from_json.read_text()), args.out, chart_too=True)
        print(f"wrote {args.out}/benchmarks-cuda.md and .png")
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
