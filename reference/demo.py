"""`make demo` (for now): every reference rule on Rosenbrock's function from the same start.

Prints one row per rule: the final loss f(θ), the distance to the minimum (1, 1) and the steps taken.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import rosen, rosen_der

from . import BASE_RULES, RULES

START = np.array([-1.5, 2.0])
STEPS = 2000
LR = 0.02
# per-rule settings that differ from the registry's defaults, for a fair showing on this problem
OVERRIDES = {"lars": {"momentum": 0.9}, "ralars": {"force_adaptive_momentum": True}}
WRAPPER_BASE = "adan"


def run(name: str, steps: int = STEPS, lr: float = LR) -> np.ndarray:
    """θ after ``steps`` steps of rule ``name`` on rosen from START (wrappers wrap WRAPPER_BASE)."""
    rule = RULES[name]
    params = [START.copy()]
    if rule.wrapper:
        base, base_hp = BASE_RULES[WRAPPER_BASE].module, {"lr": lr}
        state = rule.module.init(params, base, base_hp)
        for _ in range(steps):
            params, state = rule.module.step(params, [rosen_der(params[0])], state, base, base_hp)
    else:
        hp = {"lr": lr, **OVERRIDES.get(name, {})}
        state = rule.module.init(params, **hp)
        for _ in range(steps):
            params, state = rule.module.step(params, [rosen_der(params[0])], state, **hp)
    return params[0]


def main() -> None:
    print(
        f"Rosenbrock from {tuple(START.tolist())}, f = {rosen(START):.3f}; lr {LR}, {STEPS} steps "
        f"(wrappers around {WRAPPER_BASE})"
    )
    print(f"{'rule':<10} {'final loss':>12} {'|θ - (1,1)|':>12} {'steps':>6}")
    for name in RULES:
        theta = run(name)
        print(f"{name:<10} {rosen(theta):12.3e} {np.linalg.norm(theta - 1.0):12.3e} {STEPS:6d}")


if __name__ == "__main__":
    main()
