"""One benchmark process: ``python -m benchmarks.worker SPEC.json OUT.json``.

``compare``: every implementation of one rule on one parameter set, timed in interleaved rounds (each round
runs each implementation in turn, starting one further along each time, then the bandwidth triad), then the
peak transient memory of one step of each. ``sweep``: ours (default path) on a series of flat parameter sets.

Times are per ``opt.step()`` (CPU ops are synchronous), with the gradients assigned before the clock starts
(heavyball releases ``p.grad`` after each step, so every implementation gets it re-assigned).
"""

from __future__ import annotations

import ctypes
import gc
import json
import re
import resource
import statistics
import sys
import time
import traceback
from typing import Any

import torch

from . import impls

TRIAD_NUMEL = 1 << 25  # 128 MiB per float32 operand: far past the last-level cache
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 4096  # every block of a page or more gets its own mapping while memory is measured


# ---- bandwidth ---------------------------------------------------------------------------------------------


class Triad:
    """In-place ``a.add_(b, alpha=2)`` on two large float32 tensors: 3 streams (read a, read b, write a)."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(1)
        self.a = torch.rand(TRIAD_NUMEL, generator=gen)
        self.b = torch.rand(TRIAD_NUMEL, generator=gen)
        self.a.add_(self.b, alpha=2)  # touch every page before timing

    def gbps(self, repeats: int = 5) -> float:
        """The best bandwidth of ``repeats`` triads, in GB/s (1e9 bytes): the floor is what the memory can do."""
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.a.add_(self.b, alpha=2)
            times.append(time.perf_counter() - t0)
        self.a.mul_(0.5**repeats)  # keep the values bounded
        return 3 * impls.BYTES * TRIAD_NUMEL / min(times) / 1e9


# ---- memory ------------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))  # type: ignore[union-attr]


class PeakRSS:
    """Peak transient memory of a call: peak RSS during it minus RSS before it.

    RSS follows live allocations only when freed memory goes back to the OS, so the allocator is switched
    first: glibc's mmap threshold is pinned at one page (every larger block is its own mapping, unmapped
    when freed), and the heap is trimmed before each call. The peak (VmHWM) is reset through
    /proc/self/clear_refs before each call. Blocks are counted in whole pages.
    """

    def __init__(self) -> None:
        self.error: str | None = None
        try:
            self._libc = ctypes.CDLL("libc.so.6")
            if self._libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
                raise OSError("mallopt(M_MMAP_THRESHOLD) refused")
            self._reset()
            gc.collect()
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"

    @staticmethod
    def _reset() -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS to the current RSS

    def close(self) -> None:
        """Back to large blocks from the heap (what glibc's adaptive threshold settles at), for later timing."""
        if not self.error:
            self._libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)

    def measure(self, fn: Any) -> int | None:
        """Bytes the call ``fn()`` held at its peak beyond what was resident before it."""
        if self.error:
            return None
        self._libc.malloc_trim(0)  # free heap pages leave RSS, so that reusing them counts again
        before = _status_kb("VmRSS")
        self._reset()
        fn()
        return max(0, _status_kb("VmHWM") - before) * 1024


# ---- compare -----------------------------------------------------------------------------------------------


def _tensors(shapes: list[list[int]], seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).mul_(0.1) for s in shapes]
    grads = [torch.randn(s, generator=gen).mul_(1e-2) for s in shapes]
    return params, grads


class Run:
    """One optimizer over its own copies of the parameters and gradients."""

    def __init__(self, impl: impls.Impl, params0: list[torch.Tensor], grads0: list[torch.Tensor], copy: bool):
        self.impl = impl
        self.params = [torch.nn.Parameter(p.clone() if copy else p) for p in params0]
        self.grads = [g.clone() if copy else g for g in grads0]
        self.opt = impl.build(self.params)
        self.faults: list[int] = []

    def step(self) -> float:
        for p, g in zip(self.params, self.grads):
            p.grad = g
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        self.opt.step()
        t = time.perf_counter() - t0
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)  # pages touched for the first time
        return t


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]


def _timed_rounds(runs: list[Run], spec: dict[str, Any], triad: Triad, out: dict[str, Any]) -> None:
    steps: dict[str, int] = {}
    for run in runs:  # steps per round: about target_s of work each, at least one
        last = out["impls"][run.impl.key]["warmup"][-1]
        steps[run.impl.key] = max(1, min(spec["max_steps"], round(spec["target_s"] / max(last, 1e-9))))
        out["impls"][run.impl.key]["steps_per_round"] = steps[run.impl.key]
    for r in range(spec["rounds"]):
        k = r % len(runs)
        for run in runs[k:] + runs[:k]:
            times = [run.step() for _ in range(steps[run.impl.key])]
            out["impls"][run.impl.key]["rounds"].append(statistics.median(times))
        out["bw"].append(triad.gbps())


def compare(spec: dict[str, Any], rule: str) -> dict[str, Any]:
    shapes = [list(s) for s in impls.SIZES[spec["size"]][1]()]
    params0, grads0 = _tensors(shapes, spec["seed"])
    out: dict[str, Any] = {"numel": impls.numel([tuple(s) for s in shapes]), "tensors": len(shapes)}
    out.update(impls={}, bw=[], threads=torch.get_num_threads())
    runs: list[Run] = []
    for impl in impls.implementations(rule, heavyball_eager=spec["heavyball_eager"]):
        rec: dict[str, Any] = {"label": impl.label, "library": impl.library, "kwargs": repr(impl.kwargs)}
        rec.update(warmup=[], rounds=[], mem=None, error=None)
        out["impls"][impl.key] = rec
        try:
            run = Run(impl, params0, grads0, copy=True)
            for _ in range(spec["warmup"] + impl.warmup_extra):
                rec["warmup"].append(run.step())
            runs.append(run)
        except Exception as e:  # a peer that cannot run here is reported, not fatal
            rec["error"] = _first_line(e)
            traceback.print_exc()
    triad = Triad()
    out["bw_warm"] = triad.gbps()
    _timed_rounds(runs, spec, triad, out)
    for run in runs:  # page faults per timed step (memory the allocator had handed back to the OS)
        timed = run.faults[spec["warmup"] + run.impl.warmup_extra :]
        out["impls"][run.impl.key]["faults"] = statistics.median(timed) if timed else None
    del triad
    if spec["memory"] and runs:
        peak = PeakRSS()
        out["mem_error"] = peak.error
        # calibration: a foreach op that allocates exactly one parameter-sized copy, then frees it
        params = [p.detach() for p in runs[0].params]
        out["calib"] = [peak.measure(lambda: torch._foreach_mul(params, 2.0)) for _ in range(3)]
        for run in runs:
            vals = [peak.measure(run.step) for _ in range(spec["mem_steps"])]
            out["impls"][run.impl.key]["mem"] = None if None in vals else max(vals)
        peak.close()
    return out


# ---- sweep -------------------------------------------------------------------------------------------------


def sweep(spec: dict[str, Any], rule: str, series: dict[str, Any], triad: Triad) -> dict[str, Any]:
    impl = impls.implementations(rule)[0]  # ours, default path
    points = []
    for total, tensors in series["points"]:
        shapes = impls.flat_shapes(total, tensors)
        params0, grads0 = _tensors([list(s) for s in shapes], spec["seed"])
        run = Run(impl, params0, grads0, copy=False)
        del params0, grads0
        warm = [run.step() for _ in range(series["warmup"])]
        steps = max(1, min(spec["max_steps"], round(spec["target_s"] / max(warm[-1], 1e-9))))
        rounds, bw = [], []
        for _ in range(series["rounds"]):
            rounds.append(statistics.median(run.step() for _ in range(steps)))
            bw.append(triad.gbps())
        points.append({"numel": total, "tensors": tensors, "rounds": rounds, "bw": bw, "warmup": warm})
        del run
        gc.collect()
    return {"points": points, "threads": torch.get_num_threads()}


def main(argv: list[str]) -> None:
    """SPEC.json names ``rules`` (compare: one result per rule) or ``jobs`` (sweep: [rule, series name, series])."""
    with open(argv[0]) as f:
        spec = json.load(f)
    torch.manual_seed(spec["seed"])
    torch.set_num_threads(spec["threads"])
    if spec["mode"] == "compare":
        out = {rule: compare(spec, rule) for rule in spec["rules"]}
    else:
        triad = Triad()
        out = {f"{rule}/{name}": sweep(spec, rule, series, triad) for rule, name, series in spec["jobs"]}
    with open(argv[1], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1:])
