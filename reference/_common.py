"""The few helpers more than one reference rule reads with: a norm, the clip φ, a guarded ratio."""

from __future__ import annotations

import numpy as np

Arrays = list[np.ndarray]


def as_arrays(xs) -> Arrays:
    """float64 copies, so that no rule ever mutates (or aliases) its caller's arrays."""
    return [np.array(x, dtype=np.float64, copy=True) for x in xs]


def norm(x: np.ndarray) -> float:
    """‖x‖: the Frobenius norm of the whole tensor (the 'layer' of LARS/LAMB).

    Scaled by max|x| first, so that tiny tensors (|x| < 1e-154, whose squares underflow) keep a non-zero norm and
    huge ones (|x| > 1e154, whose squares overflow) a finite one. A NaN element makes the norm NaN, an inf one inf.
    """
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if not 0 < top < np.inf:
        return top  # 0, inf or NaN
    return top * float(np.sqrt(np.sum(np.square(x / top))))


def phi(z: float, scale_clip: tuple[float, float] | None) -> float:
    """φ(z) = min(max(z, lo), hi), or z itself when there is no clip."""
    return z if scale_clip is None else float(min(max(z, scale_clip[0]), scale_clip[1]))


def trust(num: float, den: float) -> float:
    """num / den, or 1 when either is zero (the zero-norm guard of LARS, LAMB and RaLars); a non-finite norm (NaN
    or inf) gives a NaN ratio, never the guard's 1 nor 0: a non-finite element makes its whole tensor's update NaN
    (docs/reliability.md, "Non-finite inputs"), whichever of NaN or inf the arithmetic made of it.

    den is floored at the smallest normal float (2.2e-308), so that a subnormal norm cannot overflow the ratio
    to inf (inf × a subnormal update is NaN); above that floor this is exactly num / den."""
    if not (np.isfinite(num) and np.isfinite(den)):
        return float("nan")
    return num / max(den, np.finfo(np.float64).tiny) if num != 0.0 and den != 0.0 else 1.0
