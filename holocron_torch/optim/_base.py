"""The one small base every holocron-torch rule shares: validation from the registry, lazy state,
``step()`` plumbing and the foreach/per-tensor dispatch. The math lives in each rule's list function.

A rule module provides a subclass with ``rule = "<registry name>"``, an explicit ``__init__`` (the drop-in
signature, checked against the registry by the tests) and ``fn``: a pure function over lists of tensors

    fn(params, grads, <one list per state buffer>, step, *, <hyperparameters>) -> None

that updates ``params`` and the buffers in place and never reads a tensor's value back to Python.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

import reference
from reference._spec import Rule

__all__ = ["RuleOptimizer", "Tensors", "bias_correction", "STEP_DTYPE"]

Tensors = list[Tensor]
#: the step count is a float64 0-d tensor: exact to 2^53, and left as it is by load_state_dict
STEP_DTYPE = torch.float64


def bias_correction(beta: float, steps: Tensors) -> Tensors:
    """[1 - β^t for each step tensor t] (0-d float64 tensors)."""
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

            _fused.check(self, group["params"])
        if not isinstance(group["maximize"], bool):
            raise TypeError(f"maximize must be a bool, got {group['maximize']!r}")
        for p in group["params"]:
            if torch.is_complex(p):
                raise ValueError(f"{type(self).__name__} does not support complex parameters (got {p.dtype})")
            if not p.is_floating_point():
                raise ValueError(f"{type(self).__name__} needs floating-point parameters, got {p.dtype}")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's load_state_dict, after mapping a holocron 0.3.0 checkpoint's names to ours (see _compat)."""
        from ._compat import translate

        super().load_state_dict(translate(self.rule, self.param_groups, state_dict))
        # torch casts "step" to float32 in a group with fused=True (its fused Adam's convention); ours stays float64
        for st in self.state.values():
            if isinstance(st.get("step"), Tensor) and st["step"].dtype != STEP_DTYPE:
                st["step"] = st["step"].to(STEP_DTYPE)

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
        """Fill params (those with a grad), grads (sign-flipped copies if maximize), steps and one list per
        state buffer, creating the state lazily. torch.optim's convention: the lists are filled in place, so
        torch.compile runs this eagerly and traces only the math."""
        fields = self._fields(group)
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            if g.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if group["maximize"]:
                g = torch.neg(g)
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=STEP_DTYPE, device=p.device)
                for f in fields:
                    state[f] = self._initial_state(f, p, g, group)
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
        return params, grads, steps, dict(zip(fields, lists))

    def _run(
        self,
        batches: list[list[int]],
        params: Tensors,
        grads: Tensors,
        steps: Tensors,
        buffers: dict[str, Tensors],
        hp: dict[str, Any],
    ) -> None:
        """The rule's list function, once per batch of tensor indices (a foreach bucket, or one tensor)."""
        for idx in batches:
            type(self).fn(
                _take(params, idx),
                _take(grads, idx),
                **{k: _take(v, idx) for k, v in buffers.items()},
                step=_take(steps, idx),
                **hp,
            )

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
            if foreach is None:  # torch.optim's default: foreach on CUDA, a per-tensor loop elsewhere
                foreach = all(p.is_cuda for p in params)
            batches = _buckets(params) if foreach else [[i] for i in range(len(params))]
            self._run(batches, params, grads, steps, buffers, self._hyper(group))
        return loss


def _buckets(params: Tensors) -> list[list[int]]:
    """Indices of params grouped by (device, dtype): each foreach call sees one kind of tensor."""
    out: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        out.setdefault((p.device, p.dtype), []).append(i)
    return list(out.values())


def _take(xs: Tensors, idx: list[int]) -> Tensors:
    return [xs[i] for i in idx]


# ---- small list helpers that more than one rule's math uses ----------------------------------------------
Scalar = float | Tensor


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


def norms(xs: Tensors) -> Tensors:
    """‖x‖ of each whole tensor (for a DTensor: one all-reduce of partial norms, see :func:`reduced`)."""
    return [reduced(n) for n in torch._foreach_norm(xs)]


def copy_(dst: Tensors, src: Tensors) -> None:
    """dst ← src, tensor by tensor (DTensor has no sharding rule for torch._foreach_copy_ in torch 2.13)."""
    if any(_is_dtensor(x) for x in dst):
        for d, s in zip(dst, src):
            d.copy_(s)
    else:
        torch._foreach_copy_(dst, src)


def add_scaled_(ys: Tensors, xs: Tensors, a: Scalar | Tensors) -> None:
    """ys += a · xs, for a Python number, a 0-d tensor (e.g. a tensor lr) or one 0-d tensor per tensor."""
    if isinstance(a, (int, float)):
        torch._foreach_add_(ys, xs, alpha=a)
    else:
        torch._foreach_add_(ys, torch._foreach_mul(xs, a if isinstance(a, list) else [a] * len(xs)))


def clip_norm(norms: Tensors, scale_clip: tuple[float, float] | None) -> Tensors:
    """φ(‖θ‖): the norms clamped into scale_clip (unchanged when it is None)."""
    return norms if scale_clip is None else [n.clamp(scale_clip[0], scale_clip[1]) for n in norms]


def trust_ratio(nums: Tensors, dens: Tensors) -> Tensors:
    """num / den per tensor, or 1 where either is zero (no host sync: torch.where); den floored at the dtype's
    smallest normal number, so that a subnormal norm cannot overflow the ratio (as in reference._common.trust)."""
    return [
        torch.where((n > 0) & (d > 0), n / d.clamp_min(torch.finfo(d.dtype).tiny), torch.ones_like(n))
        for n, d in zip(nums, dens)
    ]


def adam_direction(m: Tensors, v: Tensors, steps: Tensors, betas: tuple[float, float], eps: float) -> Tensors:
    """m̂ / (√v̂ + ε) with m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t): new tensors."""
    denom = torch._foreach_sqrt(torch._foreach_div(v, bias_correction(betas[1], steps)))
    torch._foreach_add_(denom, eps)
    out = torch._foreach_div(m, bias_correction(betas[0], steps))
    torch._foreach_div_(out, denom)
    return out


def ema_(xs: Tensors, ys: Tensors, beta: float) -> None:
    """xs = β xs + (1 - β) ys, literally: a lerp would compute with 1 - (1 - β), which for a tiny β (1e-10)
    is off by 8e-8 relative (found by the step-for-step suite's thorough profile)."""
    torch._foreach_mul_(xs, beta)
    torch._foreach_add_(xs, ys, alpha=1 - beta)


def ema_sq_(xs: Tensors, ys: Tensors, beta: float) -> None:
    """xs = β xs + (1 - β) ys²."""
    torch._foreach_mul_(xs, beta)
    torch._foreach_addcmul_(xs, ys, ys, value=1 - beta)
