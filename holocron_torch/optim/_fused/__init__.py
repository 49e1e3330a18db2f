"""The fused path (``fused=True``): on the CPU one hand-fused C++/OpenMP kernel per rule, in ``kernels.cpp`` beside
this file; on CUDA the rule's list function compiled (see CUDA below).

Build. All eight kernels are one extension, compiled with ``torch.utils.cpp_extension`` (the C++ compiler and
ninja; ``-O3 -fopenmp``, plus AVX2/FMA and AVX-512 on a CPU that has them) the first time it is needed: at the
construction of an optimizer with ``fused=True`` over CPU parameters, at the load of a state_dict whose groups have
``fused=True``, or at the first step over parameters that were on the meta device at construction. That takes about
30-40 s on 2 cores. The cache folder is ``$TORCH_EXTENSIONS_DIR/holocron_fused_<hash>`` (default
``~/.cache/torch_extensions/``), ``<hash>`` naming the source, the flags, Python, torch and the folder's layout; a
later process (or another checkout with the same kernels) loads the library from it in about 0.2 s. It holds
``holocron_fused_<hash>.so``, ``manifest.json`` (the library's size and SHA-256, written after a build succeeded),
``build.lock`` and, during a build, a private ``tmp-<pid>-*`` folder. Nothing is downloaded.

Faults (tests/test_fused_faults.py). The build and the cache survive them without a hang or a crash:

- Validation before loading: a library is imported only when its size and SHA-256 match its manifest, so a truncated
  or corrupted library (or one without a manifest: a build killed between its last two renames) is never mapped into
  the process (no SIGBUS). A broken build is rebuilt when the cache is writable (with a RuntimeWarning saying what was
  wrong); otherwise a RuntimeError says what is wrong and what to do.
- A read-only cache that holds a valid build is loaded without writing anything (no lock is taken).
- One build at a time per cache folder: the builder holds an flock(2) on ``build.lock`` (its PID, host and start
  time written in it); the others wait, then load what it built. The system releases an flock when its holder exits
  in any way, so a killed build (OOM killer, a cancelled job, Ctrl-C) leaves no stale lock. Waits are bounded
  (``HOLOCRON_FUSED_LOCK_TIMEOUT``, default 900 s): past it, a RuntimeError names the lock file, its holder and what
  to do. Where the file system has no flock, there is no lock: two processes may both build, which is still safe.
- The compiler runs in a child process, in a private ``tmp-*`` folder (leftovers of killed builds are removed by the
  next build), bounded by ``HOLOCRON_FUSED_BUILD_TIMEOUT`` (default 1800 s; the child's process group is killed
  past it); the child imports the new library before it is published, so a library that crashes on import is a
  message naming the signal, not a crash of the user's process. The library and then its manifest are moved into
  place by rename(2): a process killed at any point leaves the previous state or a library without a manifest
  (rebuilt next time), never a half-written file under the final name, and a library that another process has
  mapped is never overwritten in place.
- A full disk (ENOSPC in the compiler or while publishing), an unwritable cache, no compiler or no ninja: a
  RuntimeError (``FusedBuildError``) that says which, with nothing half-written left behind.
- At construction, a failure raises (the user asked for fused=True here). A group whose ``fused=True`` came from a
  state_dict saved on a machine that could build (or whose parameters were on the meta device at construction)
  trains on the default path where the kernels cannot be built: one RuntimeWarning per process (at the load), the
  same state layout, the default path's numbers (bitwise those of continuing with fused=None); the flag stays in
  the group, so a state_dict saved here resumes fused
  elsewhere. (torch's fused AdamW loads such a state_dict too; its step then raises on a device without fused
  kernels. Ours keeps the resumed job running instead, since the default path is the same update.)

Meta parameters. As torch's fused AdamW, construction accepts parameters on the meta device (nothing is built
then); materialised with ``module.to_empty(device="cpu")`` under
``torch.__future__.set_swap_module_params_on_conversion(True)`` (so the optimizer's parameters become the CPU
tensors), the first step builds or loads the kernels. A step over parameters still on the meta device raises
NotImplementedError.

torch.compile. Inside a compiled ``opt.step`` the C++ kernels are kept out of the graph: the group's tensors take
the rule's list function, traced with device scalars (inductor fuses it), so there is no graph break and no Dynamo
warning, and ``fullgraph=True`` works.

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

import contextlib
import errno
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from .. import _base
from .._base import _is_dtensor

try:
    import fcntl
except ImportError:  # not POSIX: no lock; concurrent builds are still safe (each publishes atomically), only duplicated
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "COMPILED_DEVICES",
    "KERNELS",
    "FusedBuildError",
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
#: the cache folder's layout (library, manifest, lock, tmp-* build folders); part of the folder's name
LAYOUT = "2"


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


def _seconds(variable: str, default: float) -> float:
    try:
        return float(os.environ.get(variable, default))
    except ValueError:
        return default


#: how long a process waits for another one's build (the lock) before it raises; a build takes 30-40 s on 2 cores
LOCK_TIMEOUT_S = _seconds("HOLOCRON_FUSED_LOCK_TIMEOUT", 900.0)
#: how long a build (the compiler, run in a child process) may take before it is killed
BUILD_TIMEOUT_S = _seconds("HOLOCRON_FUSED_BUILD_TIMEOUT", 1800.0)
LOCK_POLL_S = 0.1

_ext: ModuleType | None = None
#: why the kernels are unavailable to a step (set by the first step that could not load them; see fused_step)
_unavailable: str | None = None


class FusedBuildError(RuntimeError):
    """The C++ kernels cannot be built or loaded; the message says what is wrong and what to do."""


def _name() -> str:
    key = "\0".join([SOURCE.read_text(), *cflags(), *LDFLAGS, sys.version, torch.__version__, LAYOUT])
    return "holocron_fused_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def build_directory() -> Path:
    """Where the extension is built and cached: $TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions)/<name>."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / _name()


def _paths(folder: Path) -> tuple[Path, Path, Path]:
    """(library, manifest, lock) of a cache folder."""
    return folder / f"{folder.name}.so", folder / "manifest.json", folder / "build.lock"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _problem(folder: Path) -> str | None:
    """None when ``folder`` holds a complete build (a manifest written after the build succeeded, and a library
    whose size and SHA-256 are the ones it records); otherwise what is wrong, in words. Reads only."""
    so, manifest, _ = _paths(folder)
    try:
        record = json.loads(manifest.read_text())
        size, digest = int(record["size"]), str(record["sha256"])
    except FileNotFoundError:
        if not so.exists():
            return f"{so} is not built yet"
        return (
            f"{so} has no record of a completed build ({manifest.name} is missing: a build killed before it "
            f"finished, or a library put there by hand)"
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{manifest} is unreadable or corrupted ({type(e).__name__}: {e})"
    try:
        actual = so.stat().st_size
        if actual != size:
            return f"{so} is truncated or altered: {actual} bytes, where the build recorded {size}"
        if _digest(so) != digest:
            return f"{so} is corrupted: its SHA-256 differs from the one its build recorded in {manifest.name}"
    except FileNotFoundError:
        return f"{so} is missing (its build's {manifest.name} is there)"
    except OSError as e:
        return f"{so} cannot be read ({e.strerror or e})"
    return None


def _import(folder: Path) -> ModuleType:
    so = _paths(folder)[0]
    spec = importlib.util.spec_from_file_location(folder.name, so)
    if spec is None or spec.loader is None:
        raise FusedBuildError(f"{so} cannot be imported as a Python extension")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        raise FusedBuildError(f"{so} passed its checksum but does not import: {e}") from e
    missing = [k for k in KERNELS if not hasattr(module, k)]
    if missing:
        raise FusedBuildError(f"{so} lacks the kernels {missing}")
    return module


def _ninja_on_path() -> None:
    """cpp_extension runs `ninja`: a venv's ninja (pip install ninja) is found even when the venv is not active."""
    if shutil.which("ninja"):
        return
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        if (folder / "ninja").exists():
            os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
            return


def _check_toolchain() -> None:
    """FusedBuildError, before anything is spawned, when the C++ compiler or ninja is missing."""
    from torch.utils import cpp_extension

    _ninja_on_path()
    compiler = cpp_extension.get_cxx_compiler()
    if shutil.which(compiler) is None:
        raise FusedBuildError(
            f"no C++ compiler: {compiler!r} is not on PATH (install g++ or clang++, or set CXX to one)"
        )
    if shutil.which("ninja") is None:
        raise FusedBuildError("ninja is not installed (pip install ninja, or the fused extra: holocron-torch[fused])")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the out-of-memory killer, or a cancelled job?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"failed (exit status {code})"


#: run in a child process by _compile: build with cpp_extension into a private folder, import the result (a crash
#: there kills the child, not the user's process) and check that every kernel is in it
_BUILD_CHILD = """
import json, sys
from torch.utils import cpp_extension
a = json.loads(sys.argv[1])
m = cpp_extension.load(name=a["name"], sources=[a["source"]], extra_cflags=a["cflags"], extra_ldflags=a["ldflags"],
                       build_directory=a["folder"], verbose=False)
missing = [k for k in a["kernels"] if not hasattr(m, k)]
if missing:
    sys.exit(f"the built library lacks the kernels {missing}")
print(m.__file__)
"""


def _run_child(code: str, args: dict[str, Any], what: str, timeout: float) -> str:
    """Run ``code`` (python -c, ``args`` as JSON in argv[1]) in its own process group; its stdout, or a
    FusedBuildError saying how it ended (a signal, an exit status, its stderr's tail, a timeout: the group killed)."""
    child = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the compiler and ninja with it: one group to kill
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except BaseException as e:  # a timeout, or the user's Ctrl-C: no compiler left running behind us
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise FusedBuildError(
                f"{what} took over {timeout:.0f} s and was stopped (HOLOCRON_FUSED_BUILD_TIMEOUT sets the limit)"
            ) from None
        raise
    if child.returncode:
        tail = "\n".join(err.strip().splitlines()[-25:])
        raise FusedBuildError(f"{what} {_describe_exit(child.returncode)}" + (f":\n{tail}" if tail else ""))
    return out


def _compile(work: Path) -> Path:
    """Build the extension in the private folder ``work`` (in a child process, which also imports it) and return
    the library's path there."""
    source = work / SOURCE.name
    shutil.copyfile(SOURCE, source)
    args = {
        "name": work.parent.name,
        "source": str(source),
        "cflags": list(cflags()),
        "ldflags": list(LDFLAGS),
        "folder": str(work),
        "kernels": list(KERNELS),
    }
    _run_child(_BUILD_CHILD, args, "the build (the C++ compiler, in a child process)", BUILD_TIMEOUT_S)
    return work / f"{work.parent.name}.so"


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text().strip()
    except OSError:
        text = ""
    return text or "a process that has not written its name yet"


@contextlib.contextmanager
def _locked(lock: Path, timeout: float) -> Iterator[bool]:
    """Hold the build lock of a cache folder: an flock(2) on ``lock``, which the system releases when its holder
    exits in any way (a killed build leaves no stale lock). Waits at most ``timeout`` seconds, then raises a
    FusedBuildError naming the lock, its holder and what to do. Where the file system has no flock, no lock: two
    processes may then both build, each publishing its library atomically. Yields whether the lock is held."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    held = False
    try:
        if fcntl is not None:
            start = time.monotonic()
            while not held:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                except BlockingIOError:
                    waited = time.monotonic() - start
                    if waited >= timeout:
                        raise FusedBuildError(
                            f"waited {waited:.0f} s for the build lock {lock}, held by {_holder(lock)}, which is "
                            f"building the same kernels. The lock is live (the system releases it when its holder "
                            f"exits), so that process is still running: let it finish, or stop it if it is stuck, "
                            f"then try again; HOLOCRON_FUSED_LOCK_TIMEOUT sets how long to wait, TORCH_EXTENSIONS_DIR "
                            f"another cache folder"
                        ) from None
                    time.sleep(LOCK_POLL_S)
                except OSError as e:
                    if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        raise
                    break  # no flock on this file system
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n".encode(), 0)
        yield held
    finally:
        if held:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _publish(folder: Path, built: Path, work: Path) -> None:
    """Move a built library into ``folder`` and record its size and SHA-256 there. Both land by rename(2), the
    manifest last: a process killed at any point leaves either the previous state or a library without its record
    (which the next load rebuilds), never a half-written file under the final name, and never overwrites in place
    a library that another process has mapped (which would crash that process with SIGBUS)."""
    so, manifest, _ = _paths(folder)
    with open(built, "rb+") as f:
        os.fsync(f.fileno())
    record = {
        "size": built.stat().st_size,
        "sha256": _digest(built),
        "source_sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
        "cflags": list(cflags()),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    staged = work / manifest.name
    _write_durably(staged, json.dumps(record, indent=1).encode())
    manifest.unlink(missing_ok=True)
    os.replace(built, so)
    os.replace(staged, manifest)


def _dead(work: Path) -> bool:
    """Whether the process that made the build folder ``work`` (tmp-<pid>-*) has ended (on this machine)."""
    try:
        os.kill(int(work.name.split("-")[1]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    return False


def _build(folder: Path, exclusive: bool = True) -> None:
    """Build into ``folder``: in a fresh private tmp-* folder inside it, then published (see _publish). The build
    folders left by killed builds are removed first: all of them when the caller holds the lock (``exclusive``;
    no other build can be running), else those whose process has ended."""
    for old in folder.glob("tmp-*"):
        if exclusive or _dead(old):
            shutil.rmtree(old, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f"tmp-{os.getpid()}-", dir=folder))
    try:
        _publish(folder, _compile(work), work)
    except FusedBuildError as e:
        if "No space left on device" in str(e):
            raise FusedBuildError(
                f"{e}\nThe disk holding {folder} is full: free some space, or point "
                f"TORCH_EXTENSIONS_DIR at another disk"
            ) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _space_hint(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full: free some space, or point TORCH_EXTENSIONS_DIR at another disk"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make it writable, or point TORCH_EXTENSIONS_DIR at a writable folder"
    return "point TORCH_EXTENSIONS_DIR at another folder"


def _load_or_build(folder: Path) -> ModuleType:
    """The kernels from the cache folder ``folder``: loaded when it holds a valid build (without writing anything,
    so a read-only cache works), else built there first, under its lock."""
    problem = _problem(folder)
    if problem is None:
        return _import(folder)
    try:
        _check_toolchain()
    except FusedBuildError as e:
        raise FusedBuildError(f"{problem}, and it cannot be built here: {e}") from None
    with contextlib.ExitStack() as stack:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            exclusive = stack.enter_context(_locked(_paths(folder)[2], LOCK_TIMEOUT_S))
        except OSError as e:
            raise FusedBuildError(
                f"{problem}, and it cannot be built there: {e.strerror or e} ({e.filename or folder}); {_space_hint(e)}"
            ) from e
        problem = _problem(folder)  # built by another process while this one waited?
        if problem is not None:
            if "not built yet" not in problem:
                warnings.warn(f"rebuilding holocron-torch's fused kernels: {problem}", RuntimeWarning, stacklevel=4)
            try:
                _build(folder, exclusive)
            except OSError as e:
                raise FusedBuildError(
                    f"the build in {folder} failed: {e.strerror or e} ({e.filename or folder}); {_space_hint(e)}"
                ) from e
            problem = _problem(folder)
            if problem is not None:
                raise FusedBuildError(f"a build finished, but {problem}")
    return _import(folder)


def load() -> ModuleType:
    """The compiled extension, loaded from the on-disk cache (validated first) or built there, once per process.

    Raises:
        RuntimeError: it cannot be built or loaded; the message names the cause and what to do.
    """
    global _ext
    if _ext is None:
        try:
            _ext = _load_or_build(build_directory())
        except Exception as e:  # FusedBuildError, or anything unexpected from the build
            cause = str(e) if isinstance(e, FusedBuildError) else f"{type(e).__name__}: {e}"
            raise FusedBuildError(
                f"fused=True needs holocron-torch's C++ CPU kernels, which could not be built or loaded: "
                f"{cause[-3000:]}\nUse the default path (fused=None) instead, or fix the cause (the build needs a C++ "
                f"compiler and ninja, `pip install ninja`, and a writable cache folder, $TORCH_EXTENSIONS_DIR, "
                f"default ~/.cache/torch_extensions)."
            ) from e
    return _ext


def check_devices(params: list[Tensor], meta: bool = False) -> None:
    """NotImplementedError for a tensor the fused path cannot take: it runs on CPU (C++ kernels) and CUDA (compiled)
    tensors only. ``meta``: meta tensors pass (at construction: parameters materialised later, as torch allows)."""
    for p in params:
        kind = p.device.type
        if kind != "cpu" and kind not in COMPILED_DEVICES and not (meta and kind == "meta"):
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


def check(opt: Any, params: list[Tensor], strict: bool = True) -> None:
    """At construction (add_param_group) with fused=True: the rule has a kernel, the tensors are on a device the fused
    path takes (or the meta device), and what it needs is there: the C++ extension built for CPU tensors
    (RuntimeError otherwise), Triton for CUDA tensors. ``strict=False`` (a group loaded from a state_dict): a failed
    build is one RuntimeWarning instead, and the group's steps take the default path (see _kernels_for_step)."""
    if opt.rule not in KERNELS:
        raise NotImplementedError(f"{type(opt).__name__} (rule {opt.rule!r}) has no fused kernel; use fused=None")
    check_devices(params, meta=True)
    _check_compiler(params)
    if any(p.device.type == "cpu" and not _compiled_here(p) for p in params) or not params:
        if strict:
            load()
        else:
            _kernels_for_step()


def _kernels_for_step() -> ModuleType | None:
    """The kernels for a step, or None (after one RuntimeWarning per process) where they cannot be built or loaded.
    Called at the load of a group whose ``fused=True`` came from a state_dict (saved on another machine), and at a
    step of such a group or of one whose parameters were on the meta device at construction: such a group
    keeps training, on the default path (the same state layout; equal to the kernels' numbers within the dtype's
    rounding), instead of stopping a resumed job. The first failure is kept, so later steps do not retry the build."""
    global _unavailable
    if _ext is not None:
        return _ext
    if _unavailable is None:
        try:
            return load()
        except RuntimeError as e:
            _unavailable = str(e)
            warnings.warn(
                f"a param group has fused=True (from a state_dict, or parameters that were on the meta device at "
                f"construction) but the fused kernels are unavailable here, so it runs on the default path (same "
                f"state, same numbers within rounding); set group['fused'] = None to silence this. {e}",
                RuntimeWarning,
                stacklevel=4,
            )
    return None


def fused_step(opt: Any, group: dict[str, Any]) -> None:
    """One step of ``group`` of the RuleOptimizer ``opt`` on the fused path (see the module's docstring)."""
    scalars = KERNELS.get(opt.rule)
    if scalars is None:
        raise NotImplementedError(f"{type(opt).__name__} (rule {opt.rule!r}) has no fused kernel; use fused=None")
    check_devices([p for p in group["params"] if p.grad is not None])  # before any state is made
    if torch.compiler.is_compiling():
        # inside torch.compile (the user compiled opt.step): the rule's list function is traced into the graph, with
        # device scalars, where inductor fuses it; the C++ kernels stay out of it (no graph break)
        params, grads, steps, buffers = opt._gather(group)
        if params:
            opt._run(_base.buckets(params), params, grads, steps, buffers, opt._hyper(group), host=False)
        return
    # tensors whose state the gathering below creates (from +g: under maximize, remade from -g further down)
    fresh = {id(p) for p in group["params"] if p.grad is not None and not opt.state.get(p)}
    # maximize is the kernels' sign: the gradients are gathered as they are (no negated copies)
    params, grads, steps, buffers = opt._gather({**group, "maximize": False})
    if not params:
        return
    hp = opt._hyper(group)
    compiled = [i for i, p in enumerate(params) if _compiled_here(p)]
    on_cpu = [i for i, p in enumerate(params) if not _compiled_here(p)]
    rest: list[int] = []  # tensors the kernels leave to the default path
    ext = _kernels_for_step() if on_cpu else None
    if ext is None:  # the kernels cannot be built here: the default path, which keeps the same state
        rest = on_cpu
    else:
        kernel = getattr(ext, opt.rule)
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
