"""The fused build and its on-disk cache under faults (holocron_torch/optim/_fused, its docstring's "Faults"): a build
killed at any point, a truncated or corrupted library, a read-only cache, a full disk, several processes building at
once, no compiler, a fused=True checkpoint on a machine that cannot build. Never a hang, never a crash of the process;
a rebuild when the cache is writable, otherwise a message that says what is wrong.

Every test works in its own cache folder (TORCH_EXTENSIONS_DIR under tmp_path). The real library is built once per
session (in the default cache, shared with tests/test_fused.py) and copied where a test needs a valid build; a
"build" inside a test is a stand-in for ``_fused._compile`` that copies that library (the real compile takes 30-40 s),
so the fault logic around it (lock, validation, publishing, clean-up) is the real code.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import holocron_torch.optim as optim
from holocron_torch.optim import _fused

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built() -> Path:
    """The folder of a valid build of the current kernels (the default cache; built here if it is not there)."""
    _fused.load()
    folder = _fused.build_directory()
    assert _fused._problem(folder) is None
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache root for this test, the process's loaded kernels forgotten (restored afterwards)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(root))
    monkeypatch.setattr(_fused, "_ext", None)
    monkeypatch.setattr(_fused, "_unavailable", None)
    return _fused.build_directory()


def install(built: Path, folder: Path) -> None:
    """A valid build in ``folder``, as a finished build leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (f"{built.name}.so", "manifest.json"):
        shutil.copy2(built / name, folder / name)


class StandIn:
    """``_fused._compile``: puts a copy of the real library in the build's private folder, counting its calls."""

    def __init__(self, built: Path) -> None:
        self.library = built / f"{built.name}.so"
        self.calls = 0

    def __call__(self, work: Path) -> Path:
        self.calls += 1
        out = work / f"{work.parent.name}.so"
        shutil.copyfile(self.library, out)
        return out


def never_compile(work: Path) -> Path:
    raise AssertionError("compiled although a valid build was there")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` read-only for real: a read-only bind mount as root (root ignores permissions), chmod otherwise."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    for cmd in (["mount", "--bind", str(folder), str(folder)], ["mount", "-o", "remount,bind,ro", str(folder)]):
        if subprocess.run(cmd, capture_output=True).returncode:
            subprocess.run(["umount", str(folder)], capture_output=True)
            pytest.skip("root without the right to mount: no way to make a folder read-only here")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)  # -l: the library is mapped


def run_python(code: str, env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_for(path: Path, child: subprocess.Popen, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not path.exists():
        if child.poll() is not None:
            raise AssertionError(f"the child ended early: {child.communicate()}")
        assert time.monotonic() - start < timeout, f"no {path} after {timeout} s"
        time.sleep(0.05)


# a child process whose build is slow: it takes the lock, writes `marker`, then sleeps in its "compiler" (killed by
# the test); SLEEP = 0 makes it a normal stand-in build that logs its pid
CHILD = """
import os, shutil, sys, time
from pathlib import Path
from holocron_torch.optim import _fused
marker, sleep, library = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def compile_(work):
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(sleep)
    out = work / f"{work.parent.name}.so"
    shutil.copyfile(library, out)
    return out
_fused._compile = compile_
print(_fused.load().lars is not None)
"""


def child(marker: Path, sleep: float, built: Path, cache_root: Path) -> subprocess.Popen:
    code = CHILD.replace(
        "sys.argv[1]), float(sys.argv[2]), sys.argv[3]",
        f"{str(marker)!r}), {sleep}, {str(built / f'{built.name}.so')!r}",
    )
    return run_python(code, {"TORCH_EXTENSIONS_DIR": str(cache_root)}, start_new_session=True)


# ---- validation before loading ----------------------------------------------------------------------------------


def test_a_valid_cache_loads_without_compiling_or_writing(built, cache, monkeypatch):
    install(built, cache)
    before = snapshot(cache)
    monkeypatch.setattr(_fused, "_compile", never_compile)
    assert _fused.load().lars is not None
    assert snapshot(cache) == before  # not even a lock file


def truncate(so: Path, manifest: Path) -> None:
    so.write_bytes(so.read_bytes()[: so.stat().st_size // 2])


def flip_bytes(so: Path, manifest: Path) -> None:  # same size: only the checksum can tell
    data = bytearray(so.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)
    so.write_bytes(bytes(data))


def empty(so: Path, manifest: Path) -> None:
    so.write_bytes(b"")


def no_manifest(so: Path, manifest: Path) -> None:  # killed between the library's rename and the manifest's
    manifest.unlink()


def garbage_manifest(so: Path, manifest: Path) -> None:
    manifest.write_text('{"size": 12')


def no_library(so: Path, manifest: Path) -> None:
    so.unlink()


BREAKS = {
    truncate: "is truncated or altered",
    flip_bytes: "is corrupted: its SHA-256 differs",
    empty: "is truncated or altered: 0 bytes",
    no_manifest: "has no record of a completed build",
    garbage_manifest: "unreadable or corrupted",
    no_library: "is missing",
}


@pytest.mark.parametrize("damage", list(BREAKS), ids=[f.__name__ for f in BREAKS])
def test_a_broken_library_is_never_loaded_and_is_rebuilt(built, cache, monkeypatch, damage):
    install(built, cache)
    so, manifest, _ = _fused._paths(cache)
    damage(so, manifest)
    assert BREAKS[damage] in _fused._problem(cache)
    loaded = []
    real_import = _fused._import

    def checked_import(folder):
        assert _fused._problem(folder) is None, "imported a library that is not the recorded build"
        loaded.append(folder)
        return real_import(folder)

    stand_in = StandIn(built)
    monkeypatch.setattr(_fused, "_compile", stand_in)
    monkeypatch.setattr(_fused, "_import", checked_import)
    with pytest.warns(RuntimeWarning, match="rebuilding holocron-torch's fused kernels: .*" + BREAKS[damage]):
        assert _fused.load().lars is not None
    assert stand_in.calls == 1 and loaded == [cache]
    assert so.read_bytes() == stand_in.library.read_bytes() and _fused._problem(cache) is None
    assert not list(cache.glob("tmp-*"))


def test_a_truncated_library_in_a_fresh_process_is_a_message_not_a_crash(built, cache):
    """In a process that has not loaded the kernels yet (so the damaged file is what dlopen would map), with no
    compiler to rebuild: a RuntimeError naming the damage, and the process lives on."""
    install(built, cache)
    truncate(*_fused._paths(cache)[:2])
    code = """
    from holocron_torch.optim import _fused
    try:
        _fused.load()
    except RuntimeError as e:
        print("ERROR", e)
    """
    env = {"TORCH_EXTENSIONS_DIR": str(cache.parent), "CXX": "/nonexistent/c++"}
    out, err = run_python(code, env).communicate(timeout=120)
    assert out.startswith("ERROR"), (out, err)
    assert "is truncated or altered" in out and "no C++ compiler: '/nonexistent/c++'" in out


def test_a_crash_in_the_build_child_is_a_message():
    with pytest.raises(_fused.FusedBuildError, match="the build was killed by SIGBUS"):
        _fused._run_child("import os, signal; os.kill(os.getpid(), signal.SIGBUS)", {}, "the build", 60)
    with pytest.raises(_fused.FusedBuildError, match=r"failed \(exit status 1\):\n.*error: no such header"):
        _fused._run_child("import sys; sys.exit('x.cpp:1: error: no such header')", {}, "the build", 60)
    start = time.monotonic()
    with pytest.raises(_fused.FusedBuildError, match="took over 1 s and was stopped"):
        _fused._run_child("import time; time.sleep(60)", {}, "the build", 1)
    assert time.monotonic() - start < 30


# ---- read-only cache --------------------------------------------------------------------------------------------


def test_a_read_only_cache_with_a_valid_build_loads(built, cache, monkeypatch):
    install(built, cache)
    before = snapshot(cache)
    monkeypatch.setattr(_fused, "_compile", never_compile)
    with read_only(cache):
        with pytest.raises(OSError):
            (cache / "probe").write_text("")
        assert _fused.load().lars is not None
    assert snapshot(cache) == before


def test_a_read_only_cache_with_a_broken_build_says_what_is_wrong(built, cache, monkeypatch):
    install(built, cache)
    truncate(*_fused._paths(cache)[:2])
    monkeypatch.setattr(_fused, "_compile", never_compile)
    with read_only(cache):
        with pytest.raises(RuntimeError, match=r"is truncated or altered.*cannot be built there: .*writable") as info:
            _fused.load()
    assert str(cache) in str(info.value)


# ---- full disk ----------------------------------------------------------------------------------------------------


def test_a_full_disk_while_publishing_is_a_message_and_leaves_nothing_half_written(built, cache, monkeypatch):
    monkeypatch.setattr(_fused, "_compile", StandIn(built))

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(_fused, "_write_durably", full)
    with pytest.raises(RuntimeError, match=r"No space left on device.*the disk is full"):
        _fused.load()
    assert sorted(p.name for p in cache.iterdir()) == ["build.lock"]  # no library, no manifest, no tmp-* folder
    monkeypatch.undo()  # space freed: the next load builds
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(cache.parent))
    monkeypatch.setattr(_fused, "_ext", None)
    monkeypatch.setattr(_fused, "_compile", StandIn(built))
    assert _fused.load().lars is not None and _fused._problem(cache) is None


def test_a_full_disk_in_the_compiler_is_a_message(cache, monkeypatch):
    def compiler_out_of_space(work):
        raise _fused.FusedBuildError("the build failed (exit status 1):\nx.o: No space left on device")

    monkeypatch.setattr(_fused, "_compile", compiler_out_of_space)
    with pytest.raises(RuntimeError, match=r"(?s)No space left on device.*is full: free some space"):
        _fused.load()
    assert not list(cache.glob("tmp-*")) and not _fused._paths(cache)[0].exists()


def test_a_real_full_disk(built, tmp_path, monkeypatch):
    """A tmpfs smaller than the library (root only): the copy into the cache fails with ENOSPC for real."""
    disk = tmp_path / "disk"
    disk.mkdir()
    size = built.joinpath(f"{built.name}.so").stat().st_size // 2
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)]).returncode
    ):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(disk))
        monkeypatch.setattr(_fused, "_ext", None)
        monkeypatch.setattr(_fused, "_compile", StandIn(built))
        with pytest.raises(RuntimeError, match=r"No space left on device.*the disk is full"):
            _fused.load()
        folder = _fused.build_directory()
        assert sorted(p.name for p in folder.iterdir()) == ["build.lock"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


# ---- killed builds, concurrent builds, bounded waits ------------------------------------------------------------


def test_a_killed_build_leaves_no_lock_and_a_live_one_is_waited_for_boundedly(built, cache, tmp_path, monkeypatch):
    marker = tmp_path / "building"
    builder = child(marker, 300, built, cache.parent)
    try:
        wait_for(marker, builder)
        pid = builder.pid
        lock = _fused._paths(cache)[2]
        assert f"pid {pid} " in lock.read_text()
        # a live builder: the wait is bounded and the message names the lock, its holder and what to do
        monkeypatch.setattr(_fused, "LOCK_TIMEOUT_S", 1.0)
        monkeypatch.setattr(_fused, "_compile", StandIn(built))
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="waited 1 s for the build lock") as info:
            _fused.load()
        assert time.monotonic() - start < 10
        for words in (str(lock), f"pid {pid} ", "HOLOCRON_FUSED_LOCK_TIMEOUT", "fused=None"):
            assert words in str(info.value)
    finally:
        os.killpg(builder.pid, signal.SIGKILL)  # the OOM killer, or a cancelled job
        builder.communicate()
    assert list(cache.glob("tmp-*")) and lock.read_text()  # its build folder and its name in the lock remain
    monkeypatch.setattr(_fused, "LOCK_TIMEOUT_S", 30.0)
    stand_in = StandIn(built)
    monkeypatch.setattr(_fused, "_compile", stand_in)
    start = time.monotonic()
    assert _fused.load().lars is not None  # the dead builder's lock is free at once
    assert time.monotonic() - start < 10 and stand_in.calls == 1
    assert not list(cache.glob("tmp-*")) and _fused._problem(cache) is None


def test_processes_building_at_once_build_once(built, cache, tmp_path):
    """Three processes start with an empty cache: one builds (slowly), the others wait for it and load its build."""
    log = tmp_path / "builds"
    children = [child(log, 2, built, cache.parent) for _ in range(3)]
    results = [c.communicate(timeout=240) for c in children]
    assert [c.returncode for c in children] == [0, 0, 0], results
    assert [out.strip() for out, _ in results] == ["True"] * 3
    assert len(log.read_text().split()) == 1  # one build
    assert _fused._problem(cache) is None


# ---- no compiler, and a fused=True checkpoint on such a machine -------------------------------------------------


def test_no_compiler_is_a_clear_error_and_a_built_cache_still_loads(built, cache, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(RuntimeError, match=r"not built yet, and it cannot be built here: no C\+\+ compiler"):
        optim.LAMB([nn.Parameter(torch.zeros(2))], fused=True)
    install(built, cache)
    optim.LAMB([nn.Parameter(torch.zeros(2))], fused=True)  # loading needs no compiler


def test_a_fused_checkpoint_trains_on_a_machine_without_a_compiler(built, cache, monkeypatch):
    """load_state_dict takes it (one RuntimeWarning, at the load); the steps run the default path, exactly as a run
    continued with fused=None; the groups keep fused=True; an explicit fused=True construction there still raises."""

    def params():
        g = torch.Generator().manual_seed(0)
        return [nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in ((5, 3), (7,))]

    def grads(ps, t):
        g = torch.Generator().manual_seed(100 + t)
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)

    monkeypatch.setattr(_fused, "_ext", built and _fused._import(built))
    ps = params()
    opt = optim.Adan(ps, lr=0.01, weight_decay=0.01, fused=True)
    for t in range(2):
        grads(ps, t)
        opt.step()
    saved = opt.state_dict()

    monkeypatch.setattr(_fused, "_ext", None)  # "another machine": no kernels, no compiler, an empty cache
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    runs = []
    for fused_here in (True, False):
        ps2 = [nn.Parameter(p.detach().clone()) for p in ps]
        opt2 = optim.Adan(ps2, lr=0.01, weight_decay=0.01)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt2.load_state_dict(copy.deepcopy(saved))  # warns here (it tries the build), not at every step
            assert opt2.param_groups[0]["fused"] is True
            if not fused_here:
                opt2.param_groups[0]["fused"] = None
            for t in range(2, 5):
                grads(ps2, t)
                opt2.step()
        unavailable = [w for w in caught if "fused kernels are unavailable here" in str(w.message)]
        assert len(unavailable) == (1 if fused_here else 0), [str(w.message) for w in caught]
        if fused_here:
            assert "no C++ compiler" in str(unavailable[0].message)
            assert opt2.state_dict()["param_groups"][0]["fused"] is True
        runs.append(ps2)
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match=r"no C\+\+ compiler"):
        optim.Adan(params(), fused=True)
