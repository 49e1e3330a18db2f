"""The registry's vocabulary: a hyperparameter (`Hyper`) and a rule (`Rule`), as data.

Nothing here knows any particular rule; ``reference/__init__.py`` lists them.
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["Hyper", "Rule", "betas", "clip", "dof", "flag", "period", "real", "warmup"]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its name, default, valid range and the range tests draw from.

    kind is one of:
      ``real``   a number in [lo, hi] (``lo_open``/``hi_open`` exclude an end);
      ``flag``   a bool;
      ``betas``  a tuple of ``n`` numbers, each in [lo, hi) unless stated;
      ``clip``   None or a pair (lo, hi) with 0 <= lo <= hi < inf;
      ``dof``    None (means: the tensor's numel), a positive number, or inf;
      ``period`` an int >= lo (bools refused);
      ``warmup`` None or an int >= 1.
    ``sample`` is what property tests draw valid values from (a sub-range of the valid one).
    """

    name: str
    default: Any
    kind: str
    doc: str
    lo: float = 0.0
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    n: int = 0
    sample: Any = None

    def validate(self, value: Any) -> None:
        """Raise TypeError (wrong type) or ValueError (out of range) naming the argument and the value."""
        name = self.name
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        elif self.kind == "real":
            self._check_real(name, value)
        elif self.kind == "betas":
            if not isinstance(value, (tuple, list)) or len(value) != self.n:
                raise ValueError(f"{name} must be a tuple of {self.n} numbers, got {value!r}")
            for i, b in enumerate(value):
                self._check_real(f"{name}[{i}]", b)
        elif self.kind == "clip":
            if value is None:
                return
            if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(map(_is_real, value)):
                raise ValueError(f"{name} must be None or a pair (lo, hi), got {value!r}")
            lo, hi = float(value[0]), float(value[1])
            if not (0.0 <= lo <= hi < math.inf):
                raise ValueError(f"{name} must satisfy 0 <= lo <= hi < inf, got {value!r}")
        elif self.kind == "dof":
            if value is None:
                return
            if not _is_real(value):
                raise TypeError(f"{name} must be None or a number, got {value!r}")
            if not float(value) > 0.0:  # NaN fails too; inf is allowed (the Adam limit)
                raise ValueError(f"{name} must be > 0 (or inf, or None), got {value!r}")
        elif self.kind in ("period", "warmup"):
            if value is None and self.kind == "warmup":
                return
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < self.lo:
                raise ValueError(f"{name} must be >= {int(self.lo)}, got {value!r}")
        else:  # pragma: no cover - a registry typo
            raise AssertionError(self.kind)

    def _check_real(self, name: str, value: Any) -> None:
        if not _is_real(value):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        v = float(value)
        lo_ok = v > self.lo if self.lo_open else v >= self.lo
        hi_ok = v < self.hi if self.hi_open else v <= self.hi
        if not (lo_ok and hi_ok and math.isfinite(v)):
            raise ValueError(f"{name} must be in {self.interval_text()}, got {value!r}")

    def default_text(self) -> str:
        """The default, as a reader would write it (floats in %g, tuples in parentheses)."""
        return _value_text(self.default)

    def range_text(self) -> str:
        """The valid range, as a reader would write it."""
        if self.kind == "flag":
            return "True or False"
        if self.kind == "clip":
            return "None or (lo, hi) with 0 <= lo <= hi"
        if self.kind == "dof":
            return "None (= numel), > 0, or inf"
        if self.kind == "period":
            return f"int >= {int(self.lo)}"
        if self.kind == "warmup":
            return "None or int >= 1"
        interval = self.interval_text()
        return f"{self.n} values each in {interval}" if self.kind == "betas" else interval

    def interval_text(self) -> str:
        """The interval of a number (of each beta), e.g. "[0, 1)"."""
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open or self.hi == math.inf else "]"
        hi = "inf" if self.hi == math.inf else f"{self.hi:g}"
        return f"{left}{self.lo:g}, {hi}{right}"


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    return repr(value)


def real(name, default, doc, lo=0.0, hi=math.inf, *, lo_open=False, hi_open=False, sample=None) -> Hyper:
    return Hyper(name, default, "real", doc, lo, hi, lo_open, hi_open, sample=sample)


def flag(name: str, default: bool, doc: str) -> Hyper:
    return Hyper(name, default, "flag", doc, sample=(False, True))


def betas(default: tuple, doc: str, sample: tuple, lo: float = 0.0) -> Hyper:
    return Hyper("betas", tuple(default), "betas", doc, lo=lo, hi=1.0, hi_open=True, n=len(default), sample=sample)


def clip(doc: str) -> Hyper:
    return Hyper("scale_clip", None, "clip", doc, sample=(None, (0.0, 10.0), (0.5, 2.0)))


def dof(doc: str) -> Hyper:
    return Hyper("dof", None, "dof", doc, sample=(None, 1.0, 50.0, math.inf))


def period(name: str, default: int, doc: str, lo: int) -> Hyper:
    return Hyper(name, default, "period", doc, lo=lo, sample=(lo, lo + 4))


def warmup(name: str, doc: str) -> Hyper:
    return Hyper(name, None, "warmup", doc, lo=1, sample=(None, 1, 5, 100))


@dataclass(frozen=True)
class Rule:
    """One update rule: where its reference math lives and what it takes.

    ``state`` names the per-tensor buffers (the spec's symbols) that the reference ``State`` and the torch
    optimizer's ``optimizer.state[p]`` share; ``optional_state`` maps a buffer that exists only under a
    flag to that flag. ``constraints`` are checks across hyperparameters. ``wrapper`` rules take a base rule.
    """

    name: str
    cls: str
    module_name: str
    hypers: tuple[Hyper, ...]
    state: tuple[str, ...]
    paper: str
    optional_state: Mapping[str, str] = field(default_factory=dict)
    constraints: tuple[Callable[[Mapping[str, Any]], None], ...] = ()
    wrapper: bool = False

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hypers}

    def hyper(self, name: str) -> Hyper:
        for h in self.hypers:
            if h.name == name:
                return h
        raise KeyError(name)

    def validate(self, hp: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults, refuse unknown names, check every value and every cross-constraint."""
        unknown = set(hp) - {h.name for h in self.hypers}
        if unknown:
            raise TypeError(f"{self.cls} got unexpected hyperparameter(s) {sorted(unknown)}")
        full = {**self.defaults, **hp}
        for h in self.hypers:
            h.validate(full[h.name])
        for check in self.constraints:
            check(full)
        return full

    def state_fields(self, hp: Mapping[str, Any]) -> tuple[str, ...]:
        """The buffers that exist under these hyperparameters (e.g. ``v_max`` only with amsgrad)."""
        full = {**self.defaults, **hp}
        extra = tuple(k for k, flag_name in self.optional_state.items() if full.get(flag_name))
        return self.state + extra
