"""The one small base every holocron-torch rule shares: validation from the registry, lazy state,
``step()`` plumbing, the batching of tensors and the scalar helpers. The math lives in each rule's list function.

A rule module provides a subclass with ``rule = "<registry name>"``, an explicit ``__init__`` (the drop-in
signature, checked against the registry by the tests) and ``fn``: a pure function over lists of tensors

    fn(params, grads, <one list per state buffer>, step, *, <hyperparameters>) -> None

that updates ``params`` and the buffers in place. ``step`` is the step count t of each tensor, already advanced
for this step. Its type chooses how every per-tensor scalar (bias corrections, norms, trust ratios, branches) is
computed, with the same code (the helpers below take either):

- **host scalars** (eager CPU, the default path): ``step`` holds Python floats. Per-tensor reductions are read
  back once per call (``.tolist()``: on the CPU a memory read, not a device sync), the scalars are Python numbers,
  and they go into torch's fused in-place ops as their ``value``/``alpha``/``weight`` (one pass per op, no
  temporaries for scalars), and a branch (RaLars' rectification, AdamP's projection) computes only the side taken;
- **device scalars** (CUDA, DTensor, under torch.compile): ``step`` holds the float64 0-d state tensors; every
  scalar stays a 0-d tensor and every branch is a ``torch.where``: nothing is read back to Python, so there is no
  host sync and ``torch.compile(fullgraph=True)`` traces the step.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

import reference
from reference._spec import Rule

__all__ = [
    "STEP_DTYPE",
    "CPU_BATCH_NUMEL",
    "RuleOptimizer",
    "Scalars",
    "Tensors",
    "adam_denom",
    "adam_step_",
    "add_",
    "addcdiv_",
    "axpy_",
    "buckets",
    "bias_correction",
    "clip_norm",
    "copy_",
    "ema_",
    "ema_sq_",
    "exp",
    "fixed_sum",
    "host_values",
    "is_host",
    "lerp_",
    "lincomb",
    "norms",
    "reduced",
    "relu",
    "scale_",
    "scaled",
    "split_by_size",
    "sqrt",
    "trust_ratio",
    "where",
]

Tensors = list[Tensor]
#: one scalar per tensor: Python floats (host scalars) or 0-d tensors (device scalars)
Scalars = Sequence[Any]
#: the step count is a float64 0-d tensor: exact to 2^53, and left as it is by load_state_dict
STEP_DTYPE = torch.float64
#: on the CPU's default path, small tensors are updated together (foreach) in batches of about this many elements:
#: few enough that a batch's buffers stay in cache from one op to the next, many enough to pay one call per batch
CPU_BATCH_NUMEL = 1 << 16


def bias_correction(beta: float, steps: Scalars) -> Scalars:
    """[1 - β^t for each step t] (Python floats, or 0-d float64 tensors)."""
    return [1 - beta**t for t in steps]


def _as_float_lr(lr: Any) -> Any:
    """A 0-d tensor lr is validated through its value (one read at construction, never in step())."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"lr as a tensor must have one element, got shape {tuple(lr.shape)}")
        return float(lr)
    return lr


class RuleOptimizer(torch.optim.Optimizer):
    """A torch optimizer for one registry rule. Hyperparameters live in the param groups only."""

    rule: ClassVar[str]
    fn: ClassVar[Callable[..., None]]

    def __init__(
        self,
        params: Iterable[Any],
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
        **hyperparameters: Any,
    ) -> None:
        defaults = {**hyperparameters, "foreach": foreach, "maximize": maximize, "fused": fused}
        super().__init__(params, defaults)

    @classmethod
    def spec(cls) -> Rule:
        """The registry entry of this optimizer's rule."""
        return reference.RULES[cls.rule]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._validate_group(group)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: fused=True that cannot build or run
            self.param_groups.pop()
            raise

    def _validate_group(self, group: dict[str, Any]) -> None:
        spec = self.spec()
        hp = {h.name: group[h.name] for h in spec.hypers}
        hp["lr"] = _as_float_lr(hp["lr"])
        spec.validate(hp)
        for key in ("foreach", "fused"):
            if group[key] is not None and not isinstance(group[key], bool):
                raise TypeError(f"{key} must be None or a bool, got {group[key]!r}")
        if group["fused"]:  # the fused CPU kernels (see _fused): built here, so that a failed build says so now
            if group["foreach"]:
                raise ValueError("fused=True and foreach=True cannot be used together")
            from . import _fused

            # a group loaded from a state_dict is not among param_groups yet: there a failed build warns, and the
            # group's steps take the default path (a checkpoint saved fused=True resumes on a machine without a
            # compiler); at construction and add_param_group it raises
            _fused.check(self, group["params"], strict=any(g is group for g in self.param_groups))
        if not isinstance(group["maximize"], bool):
            raise TypeError(f"maximize must be a bool, got {group['maximize']!r}")
        for p in group["params"]:
            if torch.is_complex(p):
                raise ValueError(f"{type(self).__name__} does not support complex parameters (got {p.dtype})")
            if not p.is_floating_point():
                raise ValueError(f"{type(self).__name__} needs floating-point parameters, got {p.dtype}")

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's __setstate__ (run by deepcopy, pickle and load_state_dict) adds "differentiable" to defaults, a
        # flag ours do not have: groups added afterwards would carry a key the others lack
        super().__setstate__(state)
        self.defaults.pop("differentiable", None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's load_state_dict contract, with every group, buffer and step count checked at load (a
        ValueError or TypeError naming what is wrong, the optimizer left as it was) and holocron 0.3.0
        checkpoints translated (see holocron_torch/optim/_state.py and _compat.py)."""
        from ._state import load_state_dict

        load_state_dict(self, state_dict)

    def _initial_state(self, name: str, p: Tensor, g: Tensor, group: dict[str, Any]) -> Tensor:
        """A buffer's value before the first step: zeros like p, unless the rule says otherwise."""
        return torch.zeros_like(p, memory_format=torch.preserve_format)

    def _fields(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The state buffers of this group (optional ones, e.g. ``v_max``, only under their flag)."""
        spec = self.spec()
        return spec.state + tuple(k for k, flag in spec.optional_state.items() if group[flag])

    def _init_group(
        self, group: dict[str, Any], params: Tensors, grads: Tensors, steps: Tensors, *buffers: Tensors
    ) -> None:
        """Fill params (those with a grad), grads (the gradients themselves: :meth:`_gather` flips their sign under
        maximize), steps and one list per state buffer, creating the state lazily. torch.optim's convention: the
        lists are filled in place, so torch.compile runs this eagerly and traces only the math. Nothing computed
        here may reach the math: Dynamo maps only params, their grads and their state back to their sources, and
        would bake any other tensor made here (e.g. -g) into the graph as a constant of the first call."""
        fields = self._fields(group)
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            if g.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=STEP_DTYPE, device=p.device)
                for f in fields:
                    state[f] = self._initial_state(f, p, torch.neg(g) if group["maximize"] else g, group)
            params.append(p)
            grads.append(g)
            steps.append(state["step"])
            for f, buf in zip(fields, buffers):
                buf.append(state[f])

    def _gather(self, group: dict[str, Any]) -> tuple[Tensors, Tensors, Tensors, dict[str, Tensors]]:
        """(params, grads, steps, {buffer name: list}) of the group's tensors that have a gradient."""
        fields = self._fields(group)
        params, grads, steps, lists = [], [], [], tuple([] for _ in fields)
        self._init_group(group, params, grads, steps, *lists)
        if group["maximize"] and grads:  # -g, made here (traced under torch.compile), never in _init_group
            grads = [torch.neg(g) for g in grads] if _is_dtensor(grads[0]) else list(torch._foreach_neg(grads))
        return params, grads, steps, dict(zip(fields, lists))

    def _run(
        self,
        batches: list[list[int]],
        params: Tensors,
        grads: Tensors,
        steps: Tensors,
        buffers: dict[str, Tensors],
        hp: dict[str, Any],
        fn: Callable[..., None] | None = None,
        host: bool | None = None,
    ) -> None:
        """Advance the step counts, then call the rule's list function (or ``fn``, e.g. its compiled form) once per
        batch of tensor indices (a foreach bucket, a cache-sized batch or one tensor), with host or device scalars
        (see the module's docstring; ``host`` forces one or the other)."""
        todo = [i for idx in batches for i in idx]
        if not todo:
            return
        advanced = _take(steps, todo)
        torch._foreach_add_(advanced, _operand(advanced, 1.0))
        t: list[Any] = list(steps)
        if self.host_scalars(_take(params, todo)) if host is None else host:
            for i, value in zip(todo, torch.stack(advanced).tolist()):
                t[i] = value
            if isinstance(hp["lr"], Tensor):
                hp = {**hp, "lr": hp["lr"].item()}
        fn = fn or type(self).fn
        for idx in batches:
            fn(
                _take(params, idx),
                _take(grads, idx),
                **{k: _take(v, idx) for k, v in buffers.items()},
                step=_take(t, idx),
                **hp,
            )

    @staticmethod
    def host_scalars(params: Tensors) -> bool:
        """Whether per-tensor scalars are computed as Python floats: in eager mode, for plain CPU tensors (where
        reading a value back is a memory read). Elsewhere (CUDA, DTensor, torch.compile) they stay 0-d tensors."""
        return not torch.compiler.is_compiling() and all(_plain_cpu(p) for p in params)

    def _hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        return {h.name: group[h.name] for h in self.spec().hypers}

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One update of every parameter that has a gradient; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group.get("fused"):  # the hand-fused C++ CPU kernels (holocron_torch/optim/_fused)
                from ._fused import fused_step

                fused_step(self, group)
                continue
            params, grads, steps, buffers = self._gather(group)
            if not params:
                continue
            foreach = group["foreach"]
            if foreach is None:  # CUDA: one foreach call per bucket (torch.optim's default); CPU: cache-sized batches
                cpu = not all(p.is_cuda for p in params)
                batches = _batches(params, CPU_BATCH_NUMEL) if cpu else buckets(params)
            else:
                batches = buckets(params) if foreach else [[i] for i in range(len(params))]
            self._run(batches, params, grads, steps, buffers, self._hyper(group))
        return loss


def buckets(params: Tensors) -> list[list[int]]:
    """Indices of params grouped by (device, dtype): each foreach call sees one kind of tensor."""
    out: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        out.setdefault((p.device, p.dtype), []).append(i)
    return list(out.values())


def _batches(params: Tensors, numel: int) -> list[list[int]]:
    """Indices of params in batches of one (device, dtype) and at most ``numel`` elements in all (a larger tensor
    is a batch of its own): the CPU default. Each foreach op then walks buffers that are still in cache from the
    previous op, and small tensors share one call per op instead of paying one each."""
    out: list[list[int]] = []
    open_: dict[tuple[torch.device, torch.dtype], tuple[list[int], int]] = {}
    for i, p in enumerate(params):
        n = p.numel()
        if n >= numel:
            out.append([i])
            continue
        key = (p.device, p.dtype)
        batch, size = open_.get(key, ([], 0))
        if size + n > numel and batch:
            out.append(batch)
            batch, size = [], 0
        batch.append(i)
        open_[key] = (batch, size + n)
    out.extend(batch for batch, _ in open_.values() if batch)
    return out


def split_by_size(xs: Tensors) -> tuple[list[int], list[int]]:
    """Indices of the tensors smaller than CPU_BATCH_NUMEL (those the CPU default path batches together) and of the
    others, for math that is written one way for tensors that sit in cache and another for those that do not."""
    small = [i for i, x in enumerate(xs) if x.numel() < CPU_BATCH_NUMEL]
    return small, [i for i, x in enumerate(xs) if x.numel() >= CPU_BATCH_NUMEL]


def _plain_cpu(x: Tensor) -> bool:
    """A CPU tensor that is a plain Tensor or Parameter (not a subclass such as DTensor)."""
    return type(x) in (Tensor, torch.nn.Parameter) and x.device.type == "cpu"


def _take(xs: Scalars, idx: list[int]) -> list[Any]:
    return [xs[i] for i in idx]


# ---- the helpers the rules' math is written with: each takes host scalars (floats) or device scalars (0-d tensors)
def is_host(a: Any) -> bool:
    """Whether a scalar is a host scalar (a Python number) rather than a 0-d tensor."""
    return isinstance(a, (int, float))


def _one(a: Scalars) -> Any:
    """The common value of a list of Python numbers that are all equal, else None."""
    first = a[0]
    if isinstance(first, (int, float)) and isinstance(a[-1], (int, float)) and a.count(first) == len(a):
        return first
    return None


def _per_tensor(a: Any, n: int) -> Scalars:
    """A scalar (number or 0-d tensor) broadcast to one per tensor; a list is returned as it is."""
    return list(a) if isinstance(a, (list, tuple)) else [a] * n


def host_values(xs: Tensors, step: Scalars) -> Scalars:
    """Per-tensor 0-d results (norms, sums, flags) as Python floats on the host path, in one read; as they are
    on the device path (``step`` says which)."""
    if not xs or not is_host(step[0]):
        return xs
    return torch.stack(xs).tolist()


def sqrt(x: Any) -> Any:
    """√x of a Python number or a tensor."""
    return math.sqrt(x) if is_host(x) else x.sqrt()


def exp(x: Any) -> Any:
    """e^x of a Python number or a tensor."""
    return math.exp(x) if is_host(x) else x.exp()


def relu(x: Any) -> Any:
    """max(x, 0) of a Python number or a tensor."""
    return max(x, 0.0) if is_host(x) else x.clamp(min=0)


def where(cond: Any, a: Any, b: Any) -> Any:
    """a if cond else b: a Python branch for host scalars, torch.where for device scalars."""
    if is_host(cond):
        return a if cond else b
    if is_host(a) and is_host(b):  # step-derived: float64 like the step (two Python floats would give float32);
        a = torch.full((), a, dtype=STEP_DTYPE, device=cond.device)  # a fill on the device, not a host-to-device copy
    return torch.where(cond, a, b)


#: dtypes whose ops take a common host scalar as a 0-d tensor of their own dtype (bitwise the same result as a
#: Python scalar): torch wraps a Python scalar into a new tensor at every call, which costs a small tensor's op
#: twice its time (1.5 µs instead of 0.6 µs per tensor). bfloat16/float16 compute with a Python scalar in float32,
#: which a 0-d tensor of their dtype would round first: they keep the Python scalar.
_OPERAND_DTYPES = (torch.float32, torch.float64)


def _operand(xs: Tensors, a: Any) -> Any:
    """The second operand of a foreach op for one scalar per tensor (or one for all): a common host scalar as a
    shared 0-d tensor (or a Python scalar, see _OPERAND_DTYPES), distinct host scalars as a list of numbers,
    device scalars as the list of 0-d tensors."""
    ws = _per_tensor(a, len(xs))
    one = _one(ws)
    if one is None:
        return list(ws)
    x = xs[0]
    if x.dtype in _OPERAND_DTYPES and _plain_cpu(x):
        return [torch.full((), one, dtype=x.dtype)] * len(xs)
    return one


def scaled(xs: Tensors, a: Any) -> Tensors:
    """New tensors a · x (a: a number, a 0-d tensor, or one scalar per tensor)."""
    return torch._foreach_mul(xs, _operand(xs, a))


def scale_(xs: Tensors, a: Any) -> None:
    """x ← a · x in place."""
    torch._foreach_mul_(xs, _operand(xs, a))


def _skip_zeros(a: Scalars, *lists: Tensors) -> tuple[Scalars, ...]:
    """Host scalars that are 0 leave their tensor as it is: those entries are dropped from every list."""
    if not a or not is_host(a[0]) or 0 not in a:
        return (a, *lists)
    keep = [i for i, x in enumerate(a) if not (is_host(x) and x == 0)]
    return ([a[i] for i in keep], *([xs[i] for i in keep] for xs in lists))


def lincomb(xs: Tensors, ys: Tensors, a: Any) -> Tensors:
    """New tensors x + a · y: one fused pass per tensor for host scalars; device scalars scale a copy of y."""
    ws = _per_tensor(a, len(xs))
    one = _one(ws)
    if one is not None:
        return torch._foreach_add(xs, ys, alpha=one)
    if all(is_host(w) for w in ws):
        return [torch.add(x, y, alpha=w) for x, y, w in zip(xs, ys, ws)]
    out = scaled(ys, ws)
    torch._foreach_add_(out, xs)
    return out


def _out_of_range(a: Any, dtype: torch.dtype) -> bool:
    """Whether a host scalar cannot be an operand of an op on ``dtype`` tensors without being rounded away: beyond
    the dtype's largest value (torch refuses it) or below its smallest normal (it would lose its digits)."""
    if dtype == torch.float64 or not is_host(a) or a == 0 or not math.isfinite(a):
        return False
    fi = torch.finfo(dtype)
    return not fi.tiny <= abs(a) <= fi.max


def _wide_axpy_(y: Tensor, x: Tensor, a: float) -> None:
    """y ← y + a · x for a host scalar outside y's dtype's range (see _out_of_range): a · x is formed in float32
    (a within float32's normal range) or float64, where it is representable, and rounded once into y."""
    fi = torch.finfo(torch.float32)
    wide = torch.float32 if fi.tiny <= abs(a) <= fi.max else torch.float64
    y.add_(x.to(wide).mul_(a))


def _wide_lerp_(x: Tensor, y: Tensor, w: float) -> None:
    """x ← x + w (y - x) in float64, for a host weight outside x's dtype's range (see _out_of_range)."""
    x.copy_(x.to(torch.float64).lerp_(y.to(torch.float64), w))


def _peel_out_of_range(
    a: Scalars, ys: Tensors, xs: Tensors, wide_op: Callable[[Tensor, Tensor, float], None]
) -> tuple[Scalars, Tensors, Tensors]:
    """Apply ``wide_op(y, x, a)`` to the tensors whose host scalar is outside their dtype's range (see
    _out_of_range) and return the scalars and tensors left for the usual op in the dtype."""
    if not ys or ys[0].dtype == torch.float64 or not any(_out_of_range(ai, ys[0].dtype) for ai in a):
        return a, ys, xs
    keep = []
    for i, ai in enumerate(a):
        if _out_of_range(ai, ys[0].dtype):
            wide_op(ys[i], xs[i], ai)
        else:
            keep.append(i)
    return [a[i] for i in keep], [ys[i] for i in keep], [xs[i] for i in keep]


def axpy_(ys: Tensors, xs: Tensors, a: Any, skip_zeros: bool = True) -> None:
    """y ← y + a · x (a host scalar of 0 leaves y as it is, unless ``skip_zeros`` is False: then 0 · NaN and 0 · inf
    in x still reach y as NaN, which the non-finite policy needs where x may hold them). Host scalars: one fused
    pass per tensor, the same rounding whichever tensors share the call (a scalar outside the dtype's range, e.g. a
    trust ratio of 1e40 in float32 or 1e5 in float16, is applied in a wider dtype: :func:`_wide_axpy_`); device
    scalars: a · x is formed first, then added."""
    a = _per_tensor(a, len(xs))
    if skip_zeros:
        a, ys, xs = _skip_zeros(a, ys, xs)
    a, ys, xs = _peel_out_of_range(a, ys, xs, _wide_axpy_)
    if not ys:
        return
    one = _one(a)
    if one is not None:
        torch._foreach_add_(ys, xs, alpha=one)
    elif all(is_host(x) for x in a):
        for y, x, ai in zip(ys, xs, a):
            y.add_(x, alpha=ai)
    elif ys[0].dtype != torch.float64:
        torch._foreach_add_(ys, _split_scaled(xs, a))
    else:
        torch._foreach_add_(ys, scaled(xs, a))


#: the exponents a factor of _split_scaled is kept within: powers of two inside float32's (and bfloat16's) range
_SPLIT_EXP = 120


def _split_scaled(xs: Tensors, a: Scalars) -> Tensors:
    """New tensors a · x for device scalars (0-d float64 tensors) and x of a narrower dtype, without a branch on
    values: as (x · f) · (a / f) with f = 2^round(log2|a| / 2) (clamped to 2^±120), so that neither factor leaves
    the dtype's normal range where a alone would (a trust ratio of 1e40 from a subnormal gradient norm in float32,
    or 1e-45), and neither product under- or overflows where a · x is representable; rounded twice instead of
    once (where the dtype rounds a, as a 0-d operand of its own dtype, it rounds a / f, whose relative precision is
    the same). NaN and inf in a or x propagate as in a · x (0 · inf is NaN)."""
    tiny = torch.finfo(torch.float64).tiny
    a = [torch.full((), ai, dtype=STEP_DTYPE, device=x.device) if is_host(ai) else ai for ai, x in zip(a, xs)]
    f = [torch.exp2(torch.round(torch.log2(ai.abs().clamp_min(tiny)) / 2).clamp(-_SPLIT_EXP, _SPLIT_EXP)) for ai in a]
    out = torch._foreach_mul(xs, f)
    torch._foreach_mul_(out, [ai / fi for ai, fi in zip(a, f)])
    return out


def lerp_(xs: Tensors, ys: Tensors, w: Any) -> None:
    """x ← x + w (y - x), in one pass (w: a number, or one scalar per tensor). A host weight below the dtype's
    smallest normal number (TAdam's w_t / (W + w_t) of 1e-47 for a far outlier) is applied in float64, where it is
    not rounded to 0."""
    ws = _per_tensor(w, len(xs))
    ws, xs, ys = _peel_out_of_range(ws, xs, ys, _wide_lerp_)
    if not xs:
        return
    one = _one(ws)
    torch._foreach_lerp_(xs, ys, one if one is not None else list(ws))


def addcdiv_(ys: Tensors, num: Tensors, den: Tensors, a: Any) -> None:
    """y ← y + a · num / den (a host scalar of 0 leaves y as it is): one fused pass for host scalars; for device
    scalars num / den is scaled, then added (in float64 for a narrower dtype)."""
    ws, ys, num, den = _skip_zeros(_per_tensor(a, len(ys)), ys, num, den)
    if not ys:
        return
    one = _one(ws)
    if one is not None:
        torch._foreach_addcdiv_(ys, num, den, value=one)
    elif all(is_host(x) for x in ws):
        torch._foreach_addcdiv_(ys, num, den, list(ws))
    else:  # (a narrower dtype's num / den in float64: it may overflow the dtype where a · num / den does not,
        # e.g. AdaBelief's m / √s of 1e39 in float32 with α = 0.1; no branch on values here)
        wide = ys[0].dtype != torch.float64
        q = torch._foreach_div([x.to(torch.float64) for x in num] if wide else num, den)
        torch._foreach_mul_(q, list(ws))
        torch._foreach_add_(ys, q)


def add_(xs: Tensors, a: Any) -> None:
    """x ← x + a (a: a number, or one scalar per tensor)."""
    torch._foreach_add_(xs, _operand(xs, a))


def ema_(xs: Tensors, ys: Tensors, beta: float) -> None:
    """x ← β x + (1 - β) y, as one lerp pass. Its weight 1 - β carries β to within 1e-16 absolute, which is 1e-13
    relative for the β >= 1e-3 the rules are tested with; below that (β = 1e-10) the relative error of β grows to
    1e-7 (the suite does not draw β in (0, 1e-3))."""
    torch._foreach_lerp_(xs, ys, 1 - beta)


def ema_sq_(xs: Tensors, ys: Tensors, beta: float) -> None:
    """x ← β x + (1 - β) y²."""
    scale_(xs, beta)
    torch._foreach_addcmul_(xs, ys, ys, value=1 - beta)


def adam_denom(v: Tensors, bc2: Scalars, eps: float) -> Tensors:
    """New tensors √v + ε √(1 - β2^t): the Adam denominator √(v / (1 - β2^t)) + ε times √(1 - β2^t), which the
    caller folds into its step size (two passes instead of four). For float16 tensors the denominators are float32:
    ε √(1 - β2^t) (1e-8 by default) is below float16's smallest subnormal (6e-8), so a float16 denominator of a zero
    second moment would be 0 and the update 0/0 (docs/reliability.md, "Extreme magnitudes")."""
    denom = torch._foreach_sqrt([x.to(torch.float32) for x in v] if v and v[0].dtype == torch.float16 else v)
    add_(denom, [eps * sqrt(b) for b in bc2])
    return denom


def adam_step_(
    params: Tensors, m: Tensors, v: Tensors, bc1: Scalars, bc2: Scalars, eps: float, lr: Any, num: Tensors | None = None
) -> None:
    """θ ← θ - α m̂ / (√v̂ + ε), with m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t); ``num`` replaces m when given.
    Computed as θ - (α √(1 - β2^t) / (1 - β1^t)) · m / (√v + ε √(1 - β2^t))."""
    denom = adam_denom(v, bc2, eps)
    addcdiv_(params, m if num is None else num, denom, [-lr * sqrt(b2) / b1 for b1, b2 in zip(bc1, bc2)])


def _is_dtensor(x: Tensor) -> bool:
    # torch.distributed.tensor is imported by whoever makes a DTensor; importing it here would cost every user
    # 0.7 s at import time
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(x, module.DTensor)


def reduced(x: Tensor) -> Tensor:
    """A reduction (norm, sum, max) of a tensor, settled over the whole logical tensor. On a DTensor (FSDP2,
    tensor parallel) a reduction over a sharded dim leaves each rank a partial result; here the partial results
    are all-reduced, once (a scalar per tensor, or a vector per row), instead of again at each later use. Dims
    that stay sharded stay sharded; nothing is gathered. A plain tensor is returned as it is."""
    if _is_dtensor(x) and any(pl.is_partial() for pl in x.placements):
        from torch.distributed.tensor import Replicate

        return x.redistribute(placements=[Replicate() if pl.is_partial() else pl for pl in x.placements])
    return x


#: the dtype torch sums a norm's squares in, per tensor dtype (float16/bfloat16 are asked for a float32 result,
#: so that a norm above their largest value, 65504 for float16, is not rounded to inf)
_NORM_DTYPE = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


def _norm_kept(n: float, numel: int, acc: torch.dtype) -> bool:
    """Whether a norm summed from squares in ``acc`` kept its digits: finite (no square overflowed) and with
    ‖x‖² >= numel · tiny, so that squares rounded to subnormals (absolute error <= tiny · ε / 2 each) cost at most ε
    relative. NaN is kept as it is (a NaN element makes a NaN norm on every path)."""
    return n != n or (n < math.inf and n * n >= numel * torch.finfo(acc).tiny)


def _scaled_norm(x: Tensor) -> float:
    """max|x| · ‖x / max|x|‖ in float64 (reference._common.norm): neither underflows nor overflows before the result
    does. max|x| of 0, inf or NaN is the norm itself."""
    top = x.abs().amax().item() if x.numel() else 0.0
    if not 0 < top < math.inf:
        return top
    return top * torch.linalg.vector_norm(x.to(torch.float64) / top).item()


def norms(xs: Tensors, step: Scalars) -> Scalars:
    """‖x‖ of each whole tensor: host floats or 0-d tensors, like ``step`` (for a DTensor: one all-reduce of partial
    norms, see :func:`reduced`), with no underflow or overflow before the result itself does (docs/reliability.md,
    "Extreme magnitudes"). Host path: torch's norm, and for the tensors whose squares underflowed or overflowed
    (:func:`_norm_kept`) a float64 recomputation scaled by max|x| (:func:`_scaled_norm`). Device path (no branch
    on values): float16/bfloat16/float32 norms accumulated in float64, where their squares can neither underflow
    nor overflow; float64 norms with the scaled form as a second computation selected by torch.where."""
    dtype = xs[0].dtype  # a foreach list has one dtype
    acc = _NORM_DTYPE.get(dtype, dtype)
    if is_host(step[0]):
        out = torch._foreach_norm(xs, dtype=acc) if acc != dtype else torch._foreach_norm(xs)
        vals = host_values(out, step)
        for i, (x, n) in enumerate(zip(xs, vals)):
            if not _norm_kept(n, x.numel(), acc):
                vals[i] = _scaled_norm(x)
        return vals
    if dtype != torch.float64:
        out = torch._foreach_norm(xs, dtype=torch.float64)
        return [reduced(n) for n in out] if _is_dtensor(out[0]) else out  # a foreach list is all DTensors or none
    out = torch._foreach_norm(xs)
    out = [reduced(n) for n in out] if _is_dtensor(out[0]) else out
    tiny = torch.finfo(torch.float64).tiny
    scaled = []
    for x, n in zip(xs, out):
        top = reduced(x.abs().amax()) if x.numel() else torch.zeros_like(n)
        safe = torch.where((top > 0) & (top < math.inf), top, torch.ones_like(top))
        kept = ((n < math.inf) & (n * n >= x.numel() * tiny)) | ~torch.isfinite(top) | (n != n)
        scaled.append(torch.where(kept, n, top * reduced(torch.linalg.vector_norm(x / safe))))
    return scaled


#: a plain tensor's sum is taken over rows of this many elements (below torch's parallel grain size, 32768, so that
#: each row is summed by one thread), then over the rows: the same numbers whatever the number of threads
_SUM_ROW = 16384


def fixed_sum(x: Tensor) -> Tensor:
    """Σ x as a 0-d tensor (float32 for float16/bfloat16, else x's dtype), the same bits whatever
    ``torch.get_num_threads()`` (torch's own sum of a large tensor splits it by thread count, so a run resumed on a
    machine with another number of threads would drift): rows of _SUM_ROW elements, each summed in one thread, then
    the rows' sums. A DTensor's (or a non-CPU tensor's) sum is torch's, all-reduced (:func:`reduced`)."""
    acc = _NORM_DTYPE.get(x.dtype, x.dtype)
    if not _plain_cpu(x):
        return reduced(x.sum(dtype=acc))
    flat = x.reshape(-1)
    n = flat.numel()
    if n <= _SUM_ROW:
        return flat.sum(dtype=acc)
    k = n // _SUM_ROW
    total = fixed_sum(flat[: k * _SUM_ROW].view(k, _SUM_ROW).sum(dim=1, dtype=acc))  # (more levels if k is large)
    return total + flat[k * _SUM_ROW :].sum(dtype=acc) if n > k * _SUM_ROW else total


def copy_(dst: Tensors, src: Tensors) -> None:
    """dst ← src, tensor by tensor (DTensor has no sharding rule for torch._foreach_copy_ in torch 2.13)."""
    if any(_is_dtensor(x) for x in dst):
        for d, s in zip(dst, src):
            d.copy_(s)
    else:
        torch._foreach_copy_(dst, src)


def clip_norm(norms: Scalars, scale_clip: tuple[float, float] | None) -> Scalars:
    """φ(‖θ‖): the norms clamped into scale_clip (unchanged when it is None)."""
    if scale_clip is None:
        return norms
    lo, hi = scale_clip
    return [min(max(n, lo), hi) if is_host(n) else n.clamp(lo, hi) for n in norms]


def trust_ratio(nums: Scalars, dens: Scalars, like: Tensors) -> Scalars:
    """num / den per tensor, or 1 where either is zero; den floored at float64's smallest normal number, as in
    reference._common.trust (the norms are float64 whatever the dtype of ``like``, see :func:`norms`: a ratio of
    1e40 for a float32 tensor is representable here, and :func:`axpy_` applies it in a wider dtype)."""
    tiny = torch.finfo(torch.float64).tiny
    # a non-finite norm (NaN or inf) makes a NaN ratio, never the guard's 1 nor 0, as in the reference
    # (docs/reliability.md, "Non-finite inputs")
    if is_host(nums[0]) and is_host(dens[0]):
        return [
            (n / max(d, tiny) if n != 0 and d != 0 else 1.0) if math.isfinite(n + d) else math.nan
            for n, d in zip(nums, dens)
        ]
    out = []
    for n, d in zip(nums, dens):
        ratio = torch.where((n != 0) & (d != 0), n / d.clamp_min(tiny), torch.ones_like(n))
        out.append(torch.where(torch.isfinite(n + d), ratio, torch.full_like(ratio, math.nan)))
    return out
