"""One process of `make gpu` (benchmarks.gpu): runs a list of units and appends one JSON line per event.

    python -m benchmarks.gpu_worker SPEC.json OUT.jsonl

SPEC is ``{"device", "kind", "units", "deadline", "settings"}``; ``kind`` is one of

- ``checks``: per (rule, check, path): step for step against the reference in float64 and float32 (fixed cases,
  every path including fused=True), float32 with Hypothesis (the eager paths), no host sync inside step()
  (torch.cuda.set_sync_debug_mode("error")), and CUDA-graph capture and replay of step();
- ``prewarm``: one step of each rule's fused path on a benchmark set (torch.compile's caches then hold the kernels
  that the timed run needs, compiled here while the GPU is busy with the checks);
- ``timed``: per (set, dtype): the copy bandwidth, then each implementation's first step, state, transient memory
  and step time.

Before a unit runs, ``{"unit": id, "event": "start"}`` is written; after it, ``{"unit": id, "event": "done", ...}``. A
unit that kills the process (a CUDA fault) or hangs (the parent kills it) is the one started and not done: the
parent reports it and starts a new process for the units left. The code is the same on every device; on the CPU (the
dry run) what needs CUDA (sync checks, graph capture, the CUDA memory counters) is reported as not checkable.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from . import impls

# ---- parameter sets ----------------------------------------------------------------------------------------


def transformer_shapes(d: int, layers: int, vocab: int) -> list[tuple[int, ...]]:
    """A GPT-like decoder's parameters: token embedding (tied head), per layer two LayerNorms, QKV, output
    projection and a 4x MLP (weights and biases), and a final LayerNorm: 12 d² + 13 d per layer."""
    shapes: list[tuple[int, ...]] = [(vocab, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,)]  # LN 1, attention
        shapes += [(d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]  # LN 2, MLP
    return shapes + [(d,), (d,)]


#: name -> (title, shapes). The GPU run takes the first two; the CPU dry run takes their small stand-ins.
SETS: dict[str, tuple[str, Callable[[], list[tuple[int, ...]]]]] = {
    "resnet50": ("ResNet-50", impls.resnet50_shapes),
    "gpt1b": ("transformer 1.0B", lambda: transformer_shapes(2048, 18, 50304)),
    "resnet50-head": ("ResNet-50 stem + first block", lambda: impls.resnet50_shapes()[:15]),
    "gpt-tiny": ("transformer 30k", lambda: transformer_shapes(32, 2, 256)),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# ---- what is checked ---------------------------------------------------------------------------------------

#: the paths of every rule: the constructor flags that select them
PATHS: dict[str, dict[str, Any]] = {
    "default": {},
    "foreach": {"foreach": True},
    "per-tensor": {"foreach": False},
    "fused": {"fused": True},
    "fused-maximize": {"fused": True, "maximize": True},
}
#: check -> the paths it runs on
CHECKS: dict[str, tuple[str, ...]] = {
    "f64": ("default", "foreach", "per-tensor", "fused", "fused-maximize"),
    "f32": ("default", "foreach", "per-tensor", "fused"),
    "f32-hypothesis": ("default", "foreach", "per-tensor"),
    "no-sync": ("default", "foreach", "per-tensor", "fused"),
    "graph": ("default", "foreach", "per-tensor", "fused"),
}
CASE_SHAPES = [(4, 3), (5,), (), (2, 3, 2)]
CASE_STEPS = 6


def _now() -> float:
    return time.time()


class Events:
    """Writes the JSON lines (flushed at once: the parent reads them while this process runs)."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "a")  # open for the life of the process

    def write(self, **rec: Any) -> None:
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:400]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _free(device: str) -> None:
    """On CUDA, the memory of what was dropped goes back to the device (the next implementation starts clean)."""
    if device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


# ---- checks ------------------------------------------------------------------------------------------------


def _options(rule: str) -> list[dict[str, Any]]:
    """Per rule, the settings that reach every branch of its math (the suite's own list)."""
    from tests.test_no_readback import OPTIONS

    return OPTIONS[rule]


def _f32_hp(rule: str) -> dict[str, Any]:
    """The first option set on a well-conditioned float32 problem (as the suite's float32 test): ε = 1e-6 where the
    rule has one, no weight decay (g + λθ can cancel, leaving float32 no digits to compare)."""
    from reference import BASE_RULES

    names = {h.name for h in BASE_RULES[rule].hypers}
    return {**_options(rule)[0], "weight_decay": 0.0, **({"eps": 1e-6} if "eps" in names else {})}


def _fixed_case(hp: dict[str, Any], seed: int) -> Any:
    """Four tensors (a 0-d one among them) in two param groups, CASE_STEPS steps; every value 0 or |x| >= 1e-2."""
    from holocron_torch.testing import Case

    rng = np.random.default_rng(seed)

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        x = np.asarray(rng.uniform(-3.0, 3.0, size=shape), dtype=np.float64)
        return np.where(np.abs(x) < 1e-2, 0.5, x)

    params = [draw(s) for s in CASE_SHAPES]
    grads = [[draw(s) for s in CASE_SHAPES]]
    for _ in range(CASE_STEPS - 1):
        grads.append([g + 0.1 * rng.standard_normal(g.shape) for g in grads[-1]])
    return Case(params=params, grads=grads, groups=[([0, 2], dict(hp)), ([1, 3], dict(hp))])


def _cls(rule: str) -> type:
    from holocron_torch import optim
    from reference import BASE_RULES

    return getattr(optim, BASE_RULES[rule].cls)


def _reference(rule: str, path: str) -> Any:
    from holocron_torch.testing import negated
    from reference import BASE_RULES

    module = BASE_RULES[rule].module
    return negated(module) if PATHS[path].get("maximize") else module


def check_reference(rule: str, path: str, dtype: torch.dtype, device: str) -> dict[str, Any]:
    """run_case on fixed cases: float64 over every option set, float32 (well conditioned) over the first."""
    from holocron_torch.testing import run_case
    from reference import BASE_RULES

    cls, kw = _cls(rule), PATHS[path]
    hps = _options(rule) if dtype == torch.float64 else [_f32_hp(rule)]
    for i, hp in enumerate(hps):
        run_case(
            lambda groups: cls(groups, **kw),
            _reference(rule, path),
            _fixed_case({"lr": 0.01, **hp}, seed=i),
            state=BASE_RULES[rule].state_fields,
            dtype=dtype,
            device=device,
        )
    return {"status": "ok", "detail": f"{len(hps)} option set(s) x {CASE_STEPS} steps"}


def check_hypothesis(rule: str, path: str, device: str, examples: int) -> dict[str, Any]:
    """The suite's float32 property test (drawn shapes, values, hyperparameters, up to 10 steps) on ``device``."""
    from hypothesis import HealthCheck, Phase, settings

    from holocron_torch.testing import strategies, verify
    from reference import BASE_RULES
    from tests.test_step_for_step import F32_ELEMENTS

    rule_ = BASE_RULES[rule]
    cls, kw = _cls(rule), PATHS[path]
    hp = strategies.hyperparameters(rule_, eps=1e-6, weight_decay=0.0)
    # no shrinking: within a time budget the first failing example is reported as drawn
    profile = {"max_examples": examples, "deadline": None, "derandomize": True, "database": None}
    profile["phases"] = (Phase.explicit, Phase.generate)
    settings.register_profile("holocron-gpu", suppress_health_check=list(HealthCheck), **profile)
    settings.load_profile("holocron-gpu")
    verify(
        lambda groups: cls(groups, **kw),
        rule_.module,
        hyperparameters=hp,
        state=rule_.state_fields,
        dtype=torch.float32,
        device=device,
        max_steps=10,
        elements=F32_ELEMENTS,
    )
    return {"status": "ok", "detail": f"{examples} drawn examples"}


@contextlib.contextmanager
def sync_guard(device: str) -> Iterator[bool]:
    """Within: on CUDA every host-device synchronisation raises (torch.cuda.set_sync_debug_mode("error")); yields
    whether that is checked (on the CPU it cannot be)."""
    if device != "cuda":
        yield False
        return
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield True
    finally:
        torch.cuda.set_sync_debug_mode(old)


def _params(shapes: list[tuple[int, ...]], dtype: torch.dtype, device: str, seed: int) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, generator=gen, dtype=dtype).to(device)) for s in shapes]


def _grads(params: list[nn.Parameter], steps: int, seed: int) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params] for _ in range(steps)]


def check_no_sync(rule: str, path: str, device: str) -> dict[str, Any]:
    """Four steps of float32 parameters, every one inside sync_guard (on the fused path steps 2-4: step 1 compiles);
    every option set on the eager paths, plus a 0-d device tensor lr (what a scheduler with a tensor lr does)."""
    cls, kw = _cls(rule), PATHS[path]
    fused = bool(kw.get("fused"))
    variants = [dict(o) for o in (_options(rule)[:1] if fused else _options(rule))]
    if not fused:
        variants.append({**_options(rule)[0], "lr": torch.tensor(0.01, device=device)})
    checked = [False]
    for i, hp in enumerate(variants):
        params = _params(CASE_SHAPES, torch.float32, device, seed=i)
        grads = _grads(params, 4, seed=10 + i)
        opt = cls(params, **{"lr": 0.01, **hp}, **kw)
        for t, step_grads in enumerate(grads):
            for p, g in zip(params, step_grads):
                p.grad = g
            if fused and t == 0:
                opt.step()
                continue
            with sync_guard(device) as checked[0]:
                try:
                    opt.step()
                except RuntimeError as e:
                    lr = "tensor lr" if isinstance(hp.get("lr"), torch.Tensor) else "float lr"
                    opts = {k: v for k, v in hp.items() if k != "lr"}
                    return {"status": "fail", "detail": f"step {t + 1} ({opts}, {lr}): {_first_line(e)}"}
        _sync(device)
    if not checked[0]:
        return {"status": "ok", "detail": "ran; a host sync is not detectable on the CPU", "checked": False}
    return {"status": "ok", "detail": f"{len(variants)} settings x 4 steps, no sync", "checked": True}


def check_graph(rule: str, path: str, device: str) -> dict[str, Any]:
    """step() captured once in a CUDA graph (after 3 warm-up steps on a side stream) and replayed for 5 steps, against
    the same optimizer run eagerly on the same gradients: parameters and state must agree."""
    if device != "cuda":
        return {"status": "skip", "detail": "CUDA graphs need a CUDA device (CPU dry run)"}
    cls, kw = _cls(rule), PATHS[path]
    hp = {"lr": 0.01, **_options(rule)[0]}
    shapes = [(64, 32), (32,), (), (4, 8, 3, 3)]
    eager, captured = _params(shapes, torch.float32, device, 0), _params(shapes, torch.float32, device, 0)
    grads = _grads(eager, 8, seed=1)
    opt_e, opt_g = cls(eager, **hp, **kw), cls(captured, **hp, **kw)
    static = [torch.zeros_like(p) for p in captured]
    for p, g in zip(captured, static):
        p.grad = g
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for t in range(3):
            for s, g in zip(static, grads[t]):
                s.copy_(g)
            opt_g.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            opt_g.step()
    except Exception as e:
        return {"status": "fail", "detail": f"capture: {_first_line(e)}"}
    for t in range(8):
        for p, g in zip(eager, grads[t]):
            p.grad = g
        opt_e.step()
        if t >= 3:
            for s, g in zip(static, grads[t]):
                s.copy_(g)
            graph.replay()
    torch.cuda.synchronize()
    worst = 0.0
    for p, q in zip(eager, captured):
        pairs = [("parameter", p, q)] + [(k, v, opt_g.state[q][k]) for k, v in opt_e.state[p].items()]
        for name, a, b in pairs:
            if not isinstance(a, torch.Tensor):
                continue
            a, b = a.double(), b.double()
            diff = float((a - b).abs().max()) if a.numel() else 0.0
            scale = float(a.abs().max()) if a.numel() else 0.0
            worst = max(worst, diff / scale if scale > 0 else diff)
            if diff > 1e-5 * scale + 1e-7:
                detail = f"replay differs from eager in {name}: {diff:.3g} (scale {scale:.3g})"
                return {"status": "fail", "detail": detail}
    return {"status": "ok", "detail": f"5 replays equal eager (largest relative difference {worst:.2g})"}


def run_check(unit: dict[str, Any], device: str, settings: dict[str, Any]) -> dict[str, Any]:
    rule, check, path = unit["rule"], unit["check"], unit["path"]
    if check == "_exit":  # for tests/test_gpu_dryrun.py only: a unit that ends the process, as a CUDA fault would
        os._exit(3)
    if check == "f64":
        return check_reference(rule, path, torch.float64, device)
    if check == "f32":
        return check_reference(rule, path, torch.float32, device)
    if check == "f32-hypothesis":
        return check_hypothesis(rule, path, device, settings["examples"])
    if check == "no-sync":
        return check_no_sync(rule, path, device)
    if check == "graph":
        return check_graph(rule, path, device)
    raise ValueError(check)


# ---- timing ------------------------------------------------------------------------------------------------


class Clock:
    """Seconds per call: CUDA events around it on the GPU (what the stream spent, launches included), the wall clock
    on the CPU (where ops are synchronous)."""

    def __init__(self, device: str) -> None:
        self.device = device

    def laps(self, fn: Callable[[], Any], n: int, before: Callable[[], Any] | None = None) -> list[float]:
        if self.device != "cuda":
            out = []
            for _ in range(n):
                if before:
                    before()
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
            return out
        pairs = []
        for _ in range(n):
            if before:
                before()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            pairs.append((a, b))
        torch.cuda.synchronize()
        return [a.elapsed_time(b) / 1e3 for a, b in pairs]


def copy_bandwidth(device: str, numel: int) -> float:
    """GB/s (1e9 bytes) of ``dst.copy_(src)`` on two float32 tensors of ``numel`` elements, counting the bytes read
    and written; the best of 10 after 2 warm-ups."""
    src = torch.rand(numel, device=device)
    dst = torch.empty_like(src)
    clock = Clock(device)

    def copy() -> None:
        dst.copy_(src)

    clock.laps(copy, 2)
    best = min(clock.laps(copy, 10))
    return 2 * 4 * numel / best / 1e9  # the two tensors are freed on return


def _impl(rule: str, key: str, heavyball_eager: bool) -> impls.Impl:
    for impl in impls.implementations(rule, heavyball_eager=heavyball_eager):
        if impl.key == key:
            return impl
    raise KeyError(f"{rule}/{key}")


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    seen: set[int] = set()
    total = 0
    for st in opt.state.values():
        for v in st.values() if isinstance(st, dict) else ():
            if isinstance(v, torch.Tensor) and v.data_ptr() not in seen:
                seen.add(v.data_ptr())
                total += v.numel() * v.element_size()
    return total


class Bench:
    """The parameters and gradients of one (set, dtype), made once and shared by the implementations in turn (each
    with its own state, freed before the next)."""

    def __init__(self, set_name: str, dtype: str, device: str) -> None:
        self.key = (set_name, dtype)
        shapes = SETS[set_name][1]()
        gen = torch.Generator(device=device).manual_seed(0)
        dt = DTYPES[dtype]
        self.params = [nn.Parameter(torch.randn(s, generator=gen, device=device, dtype=dt).mul_(0.02)) for s in shapes]
        self.grads = [torch.randn(s, generator=gen, device=device, dtype=dt).mul_(1e-3) for s in shapes]
        self.start = [p.detach().clone() for p in self.params]  # each implementation starts from these values
        self.numel = impls.numel(shapes)
        self.tensors = len(shapes)
        self.itemsize = torch.finfo(dt).bits // 8

    def reset(self) -> None:
        """The parameters back to their starting values (one implementation's drift, or NaN, is not the next's)."""
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.start)

    def set_grads(self) -> None:
        for p, g in zip(self.params, self.grads):
            p.grad = g  # re-assigned before every step: heavyball releases p.grad after its step


def time_impl(bench: Bench, rule: str, key: str, device: str, settings: dict[str, Any]) -> dict[str, Any]:
    """First step (state creation, and compilation on the fused path), state bytes, the transient memory of one
    step, and the step time over a timed run of ``settings``' length."""
    impl = _impl(rule, key, settings["heavyball_eager"])
    cuda = device == "cuda"
    _free(device)
    bench.reset()
    opt = impl.build(bench.params)
    try:
        bench.set_grads()
        t0 = time.perf_counter()
        opt.step()
        _sync(device)
        first_s = time.perf_counter() - t0
        for _ in range(settings["warmup"] + impl.warmup_extra):
            bench.set_grads()
            opt.step()
        _sync(device)
        transient = None
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        bench.set_grads()
        t0 = time.perf_counter()
        opt.step()
        _sync(device)
        est = time.perf_counter() - t0
        if cuda:
            transient = torch.cuda.max_memory_allocated() - before
        n = max(settings["min_steps"], min(settings["max_steps"], round(settings["target_s"] / max(est, 1e-6))))
        laps = Clock(device).laps(opt.step, n, before=bench.set_grads)
        finite = all(bool(torch.isfinite(p).all()) for p in bench.params[:3])
        q = statistics.quantiles(laps, n=4) if len(laps) > 1 else [laps[0], laps[0], laps[0]]
        return {
            "status": "ok" if finite else "fail",
            "detail": "" if finite else "parameters not finite after the timed steps",
            "label": impl.label,
            "library": impl.library,
            "first_s": first_s,
            "steps": n,
            "s": statistics.median(laps),
            "s_min": min(laps),
            "s_q1": q[0],
            "s_q3": q[2],
            "state_bytes": _state_bytes(opt),
            "transient_bytes": transient,
            "bytes": impls.FLOORS[rule].streams * bench.itemsize * bench.numel,
        }
    finally:
        del opt
        _free(device)


def prewarm(bench: Bench, rule: str, device: str) -> dict[str, Any]:
    """One step of the rule's fused path on the set (on CUDA: compiled, and cached for the timed run)."""
    bench.reset()
    opt = _cls(rule)(bench.params, fused=True, **impls.COMMON[rule])
    try:
        bench.set_grads()
        t0 = time.perf_counter()
        opt.step()
        _sync(device)
        return {"status": "ok", "first_s": time.perf_counter() - t0}
    finally:
        del opt
        _free(device)


# ---- the loop ----------------------------------------------------------------------------------------------


def _environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(
            name=torch.cuda.get_device_name(0),
            capability=f"{props.major}.{props.minor}",
            sms=props.multi_processor_count,
            mem_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
        )
        try:
            import triton

            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = "not installed"
    return env


def main(argv: list[str]) -> None:
    with open(argv[0]) as f:
        spec = json.load(f)
    out = Events(argv[1])
    device, kind, settings, deadline = spec["device"], spec["kind"], spec["settings"], spec["deadline"]
    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(1)  # the dry run: see benchmarks.gpu._device_env
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    out.write(event="env", **_environment(device))
    bench: Bench | None = None
    for unit in spec["units"]:
        uid = unit["id"]
        if _now() > deadline:
            out.write(unit=uid, event="done", status="not run", detail="time budget spent")
            continue
        out.write(unit=uid, event="start", t=_now())
        t0 = time.perf_counter()
        try:
            if kind == "checks":
                rec = run_check(unit, device, settings)
            else:
                key = (unit["set"], unit["dtype"])
                if bench is None or bench.key != key:
                    bench = None
                    _free(device)
                    bench = Bench(*key, device)
                    if kind == "timed":
                        gbps = copy_bandwidth(device, settings["copy_numel"])
                        out.write(
                            event="copy", set=key[0], dtype=key[1], gbps=gbps, numel=bench.numel, tensors=bench.tensors
                        )
                if kind == "prewarm":
                    rec = prewarm(bench, unit["rule"], device)
                else:
                    rec = time_impl(bench, unit["rule"], unit["key"], device, settings)
            _sync(device)  # an asynchronous CUDA error surfaces here, in the unit that caused it
        except Exception as e:  # one failing rule or path is a row of the report, not the end of the run
            traceback.print_exc()
            # a mismatch against the reference (or a failed assertion) is a failure; anything else an error
            rec = {"status": "fail" if isinstance(e, AssertionError) else "error", "detail": _first_line(e)}
            _free(device)
        rec["seconds"] = time.perf_counter() - t0
        out.write(unit=uid, event="done", **rec)


if __name__ == "__main__":
    main(sys.argv[1:])
