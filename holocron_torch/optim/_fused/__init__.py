"""The fused path (``fused=True``): on the CPU one hand-fused C++/OpenMP kernel per rule, in ``kernels.cpp`` beside
this file; on CUDA the rule's list function compiled (see CUDA below).

Build. All eight kernels are one extension, compiled by ``torch.utils.cpp_extension.load`` (the C++ compiler and
ninja; ``-O3 -fopenmp``, plus AVX2/FMA and AVX-512 on a CPU that has them) the first time a process asks for it: at
the construction of an optimizer with ``fused=True`` (or at the first step of one whose groups got ``fused=True`` from a
state_dict). That takes about 30-40 s on 2 cores; the library goes into ``$TORCH_EXTENSIONS_DIR/holocron_fused_<hash>``
(default ``~/.cache/torch_extensions/``), ``<hash>`` naming the source, the flags, Python and torch, so that a later
process (or another checkout with the same kernels) loads it in about 0.2 s without compiling; a changed source gets
a new folder. Nothing is downloaded. When the extension cannot be built (no compiler, no ninja, a compile error),
construction raises a RuntimeError that names the cause.

Step. Per param group, one call into C++ with the group's lists: every tensor that is on the CPU, float32 or
float64, dense, with its gradient and state buffers laid out like it, is updated there (the kernel also increments
its float64 0-d ``state["step"]``); the C++ side returns the others (bfloat16/float16, non-dense views, tensor
subclasses, ...), which take the rule's default list function, per tensor. The state layout is the default path's,
so state_dicts move between the two freely. Per-tensor scalars are doubles: a 0-d tensor ``lr`` is read with
``.item()`` here, which on the CPU is a plain memory read, not a device sync. Under ``maximize`` the kernels read
``-grad`` on the fly (no negated copy).

CUDA. CUDA tensors take the rule's own list function compiled by torch.compile(fullgraph=True) (inductor: Triton
kernels, the foreach ops of each (device, dtype) bucket fused horizontally into few launches), with device scalars:
no value is read back, so no host sync (``COMPILED_DEVICES``). It needs Triton, checked at construction; the first
step compiles. Not measured on a GPU yet: no GPU was available where this was written; its logic is tested on the CPU
by routing CPU tensors through it (tests/test_compiled_fused.py). Other devices raise NotImplementedError.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from .. import _base
from .._base import _is_dtensor

__all__ = [
    "COMPILED_DEVICES",
    "KERNELS",
    "build_directory",
    "check",
    "check_devices",
    "compiled_fn",
    "fused_step",
    "load",
]

SOURCE = Path(__file__).with_name("kernels.cpp")
# -fno-math-errno, -fno-trapping-math: sqrt and division vectorize (no errno, no FP traps); no value changes
BASE_CFLAGS = ("-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math")
# on an x86 CPU with AVX2 (torch's own dispatch says so), 256-bit vectors and FMA: the kernels' divisions and square
# roots stop being the bottleneck (about 2x on AdaBelief, Adan, AdEMAMix, LAMB). The flags are part of the build's
# name, so a cache folder shared between machines keeps one build per kind of CPU.
AVX2_CFLAGS = ("-mavx2", "-mfma")
_AVX2 = ("AVX2", "AVX512")  # torch.backends.cpu.get_cpu_capability() of such a CPU
# on a CPU with AVX-512 (torch's dispatch says "AVX512"), 512-bit vectors: twice the lanes for the divisions and square
# roots of the two-pass rules, whose passes are otherwise bound by arithmetic rather than by memory
AVX512_CFLAGS = ("-mavx512f", "-mavx512vl", "-mavx512dq", "-mavx512bw", "-mprefer-vector-width=512")
LDFLAGS = ("-fopenmp",)


def cflags() -> tuple[str, ...]:
    """The compiler flags for this machine: BASE_CFLAGS, plus AVX2_CFLAGS where the CPU has AVX2 and
    AVX512_CFLAGS where it has AVX-512."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    capability = torch.backends.cpu.get_cpu_capability() if x86 else ""
    return (
        BASE_CFLAGS + (AVX2_CFLAGS if capability in _AVX2 else ()) + (AVX512_CFLAGS if capability == "AVX512" else ())
    )


#: devices whose tensors take the compiled path under fused=True: the rule's list function through torch.compile
#: (inductor: Triton kernels on CUDA, the foreach ops of a bucket fused horizontally into few launches). The CPU has
#: the C++ kernels; the test suite adds "cpu" here to check the compiled path's logic without a GPU.
COMPILED_DEVICES: tuple[str, ...] = ("cuda",)
STALE_LOCK_S = 600  # a build takes well under a minute

_ext: ModuleType | None = None


def _name() -> str:
    key = "\0".join([SOURCE.read_text(), *cflags(), *LDFLAGS, sys.version, torch.__version__])
    return "holocron_fused_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def build_directory() -> Path:
    """Where the extension is built and cached: $TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions)/<name>."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / _name()


def _ninja_on_path() -> None:
    """cpp_extension runs `ninja`: a venv's ninja (pip install ninja) is found even when the venv is not active."""
    if shutil.which("ninja"):
        return
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        if (folder / "ninja").exists():
            os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
            return


def _build() -> ModuleType:
    from torch.utils import cpp_extension

    _ninja_on_path()
    folder = build_directory()
    folder.mkdir(parents=True, exist_ok=True)
    # the source is compiled from a copy inside the build folder (written only when it differs, so that its
    # timestamp stays): the build's inputs are then the same for every checkout, and ninja finds it up to date
    copy = folder / SOURCE.name
    text = SOURCE.read_text()
    lock = folder / "lock"  # cpp_extension's build lock: one left by a killed build would make us wait forever
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        lock.unlink(missing_ok=True)
    if not copy.exists() or copy.read_text() != text:
        copy.write_text(text)
    return cpp_extension.load(
        name=folder.name,
        sources=[str(copy)],
        extra_cflags=list(cflags()),
        extra_ldflags=list(LDFLAGS),  # copies: cpp_extension appends to the list it is given
        build_directory=str(folder),
        verbose=False,
    )


def load() -> ModuleType:
    """The compiled extension, built on the first call of the process (cached on disk for later ones).

    Raises:
        RuntimeError: it cannot be built or loaded; the message names the cause (the build log's tail).
    """
    global _ext
    if _ext is None:
        try:
            _ext = _build()
        except Exception as e:  # a compiler's error, a missing ninja, an unwritable cache, ...
            raise RuntimeError(
                f"fused=True needs holocron-torch's C++ CPU kernels, which could not be built: {type(e).__name__}: "
                f"{str(e)[-2000:]}\nUse the default path (fused=None) instead, or fix the build (it needs a C++ "
                f"compiler and ninja, `pip install ninja`; it builds under $TORCH_EXTENSIONS_DIR, default "
                f"~/.cache/torch_extensions)."
            ) from e
    return _ext


def check_devices(params: list[Tensor]) -> None:
    """NotImplementedError for a tensor the fused path cannot take: it runs on CPU (C++ kernels) and CUDA (compiled)
    tensors only."""
    for p in params:
        if p.device.type != "cpu" and p.device.type not in COMPILED_DEVICES:
            raise NotImplementedError(f"fused=True runs on CPU and CUDA tensors only, got {p.device}")


def _compiled_here(p: Tensor) -> bool:
    """Whether p takes the compiled path (a DTensor takes the default path: compiling over DTensors is untested)."""
    return p.device.type in COMPILED_DEVICES and not _is_dtensor(p)


_compiled: dict[type, Callable[..., None]] = {}


def compiled_fn(cls: type) -> Callable[..., None]:
    """The rule's list function under torch.compile(fullgraph=True): no graph break, hence no read-back of a value
    to Python (on CUDA, no host sync) in the step. One per optimizer class; compiled at its first call per set of
    shapes (about a minute for a large model; dynamo recompiles for new shapes, up to its cache limit)."""
    fn = _compiled.get(cls)
    if fn is None:
        fn = _compiled[cls] = torch.compile(cls.fn, fullgraph=True)
    return fn


def _check_compiler(params: list[Tensor]) -> None:
    """RuntimeError, at construction, when CUDA tensors would need Triton (torch.compile's CUDA backend) and it is not
    installed."""
    if any(p.device.type == "cuda" for p in params if _compiled_here(p)):
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            raise RuntimeError(
                "fused=True on CUDA compiles the update with torch.compile, which needs Triton (pip install triton, "
                "or a torch build that ships it); use the default path (fused=None) instead"
            )


# ---- per rule, the kernel's scalar arguments after lr ----------------------------------------------------------
# A kernel takes (params, grads, <one list per state buffer>, steps, lr, <these>, sign), its buffers in the
# registry's order (Rule.state, then Rule.optional_state, an absent optional one as an empty list), and returns the
# indices of the tensors it left to the caller.
def _clip(hp: dict[str, Any], default: tuple[float, float] | None) -> tuple[float, float]:
    clip = hp["scale_clip"] or default
    return (0.0, math.inf) if clip is None else (float(clip[0]), float(clip[1]))


def _adam(hp: dict[str, Any]) -> tuple[Any, ...]:
    return (*hp["betas"], hp["eps"], hp["weight_decay"])


_LAMB_CLIP = (0.0, 10.0)  # lamb.DEFAULT_CLIP (LAMB's and RaLars' φ when scale_clip is None)
KERNELS: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    "lars": lambda hp: (hp["momentum"], hp["dampening"], hp["weight_decay"], hp["nesterov"], *_clip(hp, None)),
    "lamb": lambda hp: (*_adam(hp), *_clip(hp, _LAMB_CLIP)),
    "ralars": lambda hp: (*_adam(hp), hp["force_adaptive_momentum"], *_clip(hp, _LAMB_CLIP)),
    "tadam": lambda hp: (*_adam(hp), math.nan if hp["dof"] is None else hp["dof"]),  # NaN: None (ν = numel)
    "adabelief": _adam,
    "adamp": lambda hp: (*_adam(hp), hp["delta"], hp["wd_ratio"], hp["nesterov"]),
    "adan": _adam,
    "ademamix": lambda hp: (  # a warm-up of None travels as 0
        *hp["betas"],
        hp["alpha"],
        hp["eps"],
        hp["weight_decay"],
        hp["alpha_warmup"] or 0,
        hp["beta3_warmup"] or 0,
    ),
}


def check(opt: Any, params: list[Tensor]) -> None:
    """At construction (add_param_group) with fused=True: the rule has a kernel, the tensors are on a device the fused
    path takes, and what it needs is there: the C++ extension built for CPU tensors (RuntimeError otherwise), Triton
    for CUDA tensors."""
    if opt.rule not in KERNELS:
        raise NotImplementedError(f"{type(opt).__name__} (rule {opt.rule!r}) has no fused kernel; use fused=None")
    check_devices(params)
    _check_compiler(params)
    if any(not _compiled_here(p) for p in params) or not params:
        load()


def fused_step(opt: Any, group: dict[str, Any]) -> None:
    """One step of ``group`` of the RuleOptimizer ``opt`` on the fused path (see the module's docstring)."""
    scalars = KERNELS.get(opt.rule)
    if scalars is None:
        raise NotImplementedError(f"{type(opt).__name__} (rule {opt.rule!r}) has no fused kernel; use fused=None")
    # tensors whose state the gathering below creates (from +g: under maximize, remade from -g further down)
    fresh = {id(p) for p in group["params"] if p.grad is not None and not opt.state.get(p)}
    # maximize is the kernels' sign: the gradients are gathered as they are (no negated copies)
    params, grads, steps, buffers = opt._gather({**group, "maximize": False})
    if not params:
        return
    check_devices(params)
    hp = opt._hyper(group)
    compiled = [i for i, p in enumerate(params) if _compiled_here(p)]
    on_cpu = [i for i, p in enumerate(params) if not _compiled_here(p)]
    rest: list[int] = []  # tensors the kernels leave to the default path
    if on_cpu:
        kernel = getattr(load(), opt.rule)
        lr = group["lr"].item() if isinstance(group["lr"], Tensor) else float(group["lr"])  # CPU memory: no sync
        spec = opt.spec()

        def sub(xs: list[Tensor]) -> list[Tensor]:
            return [xs[i] for i in on_cpu]

        lists = [sub(buffers[k]) if k in buffers else [] for k in spec.state + tuple(spec.optional_state)]
        skipped = kernel(
            sub(params), sub(grads), *lists, sub(steps), lr, *scalars(hp), -1.0 if group["maximize"] else 1.0
        )
        rest = [on_cpu[i] for i in skipped]
    if group["maximize"]:  # the default path and the compiled one take -g
        for i in rest + compiled:
            grads[i] = torch.neg(grads[i])
            if id(params[i]) in fresh:
                for f, buf in buffers.items():
                    buf[i].copy_(opt._initial_state(f, params[i], grads[i], group))
    opt._run([[i] for i in rest], params, grads, steps, buffers, hp)  # the default path, per tensor
    if compiled:  # one batch per (device, dtype)
        batches = [[compiled[j] for j in b] for b in _base.buckets([params[i] for i in compiled])]
        opt._run(batches, params, grads, steps, buffers, hp, fn=compiled_fn(type(opt)), host=False)
