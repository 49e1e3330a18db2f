"""Shared plumbing for the notebooks: two 2-d test functions, runners, plots, a state tracer and the side-by-side
comparison of a torch optimizer with its NumPy reference.

Nothing here is an update rule. Every step is taken by ``reference`` (the float64 NumPy rules), by
``holocron_torch.optim`` or by ``torch.optim.Adam``; this module only defines the *test functions* the steps are
taken on, feeds the gradients and records, prints and draws what comes out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm
from scipy.optimize import rosen, rosen_der

from holocron_torch.testing import Case, run_case, wrapped
from reference import RULES

__all__ = [
    "PROBLEMS",
    "QUADRATIC",
    "ROSENBROCK",
    "Problem",
    "adam",
    "agreement",
    "describe",
    "layered",
    "plot_losses",
    "plot_paths",
    "plot_relative_updates",
    "random_grads",
    "run",
    "run_torch",
    "show_state",
    "trace",
    "trajectories",
    "unroll",
    "unroll_torch",
    "wrapper_rule",
]

np.set_printoptions(precision=6, suppress=False, linewidth=110)


def describe(rule: Any) -> None:
    """Print a registry entry: class, paper, state buffers and every hyperparameter with default and range."""
    kind = "wrapper around any torch optimizer" if rule.wrapper else "update rule"
    print(f"{rule.name}: holocron_torch.optim.{rule.cls}, {kind}; paper: {rule.paper}")
    extra = [f"{k} (with {flag})" for k, flag in rule.optional_state.items()]
    print(f"state buffers per tensor: {', '.join([*rule.state, *extra])}")
    print(f"{'hyperparameter':<16}{'default':<22}{'valid':<38}meaning")
    for h in rule.hypers:
        print(f"{h.name:<16}{h.default!r:<22}{h.range_text():<38}{h.doc}")


# ---- test functions ------------------------------------------------------------------------------------------
class Problem(NamedTuple):
    """A 2-d test function: value, gradient, a start point, the minimiser and the window to draw."""

    name: str
    f: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    start: np.ndarray
    minimum: np.ndarray
    xlim: tuple[float, float]
    ylim: tuple[float, float]


_TURN = np.deg2rad(30.0)
_ROTATION = np.array([[np.cos(_TURN), -np.sin(_TURN)], [np.sin(_TURN), np.cos(_TURN)]])
#: Hessian of the quadratic: eigenvalues 1 and 50 (condition number 50), axes turned by 30 degrees, so that no
#: per-coordinate rescaling (Adam's) can undo the ill-conditioning
HESSIAN = _ROTATION @ np.diag([1.0, 50.0]) @ _ROTATION.T


def quadratic(x: np.ndarray) -> float | np.ndarray:
    """f(x) = ½ xᵀ H x, minimum 0 at the origin (x of shape (2, ...) gives one value per point, like rosen)."""
    return 0.5 * np.einsum("i...,ij,j...->...", x, HESSIAN, x)


def quadratic_der(x: np.ndarray) -> np.ndarray:
    """∇f(x) = H x."""
    return HESSIAN @ x


ROSENBROCK = Problem("Rosenbrock", rosen, rosen_der, np.array([-1.5, 2.0]), np.array([1.0, 1.0]), (-2, 2), (-1, 3))
QUADRATIC = Problem(
    "ill-conditioned quadratic (κ = 50)",
    quadratic,
    quadratic_der,
    np.array([1.5, 1.0]),
    np.zeros(2),
    (-2, 2),
    (-1.5, 1.5),
)
PROBLEMS = (ROSENBROCK, QUADRATIC)


# ---- runners -------------------------------------------------------------------------------------------------
def run(rule: Any, problem: Problem, steps: int, **hp: Any) -> np.ndarray:
    """θ_0, ..., θ_steps of a reference rule (anything with ``init``/``step``) on ``problem``: shape (steps + 1, 2)."""
    params = [problem.start.copy()]
    state = rule.init(params, **hp)
    path = [params[0]]
    for _ in range(steps):
        params, state = rule.step(params, [problem.grad(params[0])], state, **hp)
        path.append(params[0])
    return np.array(path)


def run_torch(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], problem: Problem, steps: int) -> np.ndarray:
    """The same for a torch optimizer, on one float64 tensor of 2 elements (``make`` builds it from [θ])."""
    theta = torch.tensor(problem.start, dtype=torch.float64, requires_grad=True)
    opt = make([theta])
    path = [problem.start.copy()]
    for _ in range(steps):
        theta.grad = torch.from_numpy(problem.grad(theta.detach().numpy().copy()))
        opt.step()
        path.append(theta.detach().numpy().copy())
    return np.array(path)


def adam(problem: Problem, steps: int, lr: float) -> np.ndarray:
    """The baseline: torch.optim.Adam with its defaults and learning rate ``lr``."""
    return run_torch(lambda ps: torch.optim.Adam(ps, lr=lr), problem, steps)


def unroll(rule: Any, params: list[np.ndarray], grads: Sequence[list[np.ndarray]], **hp: Any):
    """For a fixed gradient sequence: the parameters before and after every step, and the State after each."""
    state = rule.init(params, **hp)
    thetas, states = [[np.array(p, dtype=np.float64) for p in params]], []
    for g in grads:
        params, state = rule.step(params, g, state, **hp)
        thetas.append(params)
        states.append(state)
    return thetas, states


def unroll_torch(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], params, grads):
    """The same for a torch optimizer in float64: parameters, and ``optimizer.state[p]`` as NumPy, per step."""
    tensors = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    opt = make(tensors)
    thetas, states = [[np.array(p, dtype=np.float64) for p in params]], []
    for g in grads:
        for p, gi in zip(tensors, g):
            p.grad = torch.tensor(gi, dtype=torch.float64)
        opt.step()
        thetas.append([p.detach().numpy().copy() for p in tensors])
        states.append([{k: v.numpy().copy() for k, v in opt.state[p].items()} for p in tensors])
    return thetas, states


def wrapper_rule(wrapper: str, base: str) -> wrapped:
    """A wrapper's reference around a base rule's reference, taking both rules' hyperparameters in one dict."""
    return wrapped(RULES[wrapper].module, RULES[base].module, [h.name for h in RULES[wrapper].hypers])


# ---- plots ---------------------------------------------------------------------------------------------------
def plot_paths(problem: Problem, paths: dict[str, np.ndarray], ax: plt.Axes, styles: dict | None = None) -> None:
    """Paths over the contours of f (log-spaced levels); ○ start, ★ minimum, × where each path ended.

    ``styles`` maps a label to extra keyword arguments for its line (e.g. ``{"Adam": {"ls": "--"}}``).
    """
    xs = np.linspace(*problem.xlim, 300)
    ys = np.linspace(*problem.ylim, 300)
    X, Y = np.meshgrid(xs, ys)
    Z = problem.f(np.stack([X, Y])) + 1e-3
    levels = np.logspace(np.log10(Z.min()), np.log10(Z.max()), 18)
    ax.contour(X, Y, Z, levels=levels, norm=LogNorm(), cmap="Greys", linewidths=0.6)
    for label, path in paths.items():
        (line,) = ax.plot(path[:, 0], path[:, 1], label=label, **{"lw": 1.3, **(styles or {}).get(label, {})})
        ax.plot(*path[-1], "x", color=line.get_color(), ms=8, mew=2)
    ax.plot(*problem.start, "o", color="k", ms=5)
    ax.plot(*problem.minimum, "*", color="gold", mec="k", ms=14)
    ax.set(xlim=problem.xlim, ylim=problem.ylim, xlabel=r"$\theta_1$", ylabel=r"$\theta_2$", title=problem.name)


def plot_losses(problem: Problem, paths: dict[str, np.ndarray], ax: plt.Axes, styles: dict | None = None) -> None:
    """f(θ_t) - f(θ*) against t, on a log scale."""
    f_min = problem.f(problem.minimum)
    for label, path in paths.items():
        ax.semilogy([problem.f(p) - f_min for p in path], label=label, **{"lw": 1.3, **(styles or {}).get(label, {})})
    ax.set(xlabel="step $t$", ylabel=r"$f(\theta_t) - f(\theta^*)$", title=f"{problem.name}: loss")
    ax.grid(True, which="major", alpha=0.3)


def trajectories(runs: Callable[[Problem], dict[str, np.ndarray]], title: str, styles=None) -> plt.Figure:
    """One row per test function: the paths on its contours, and the loss curves; ``runs(problem)`` gives paths."""
    fig, axes = plt.subplots(len(PROBLEMS), 2, figsize=(12, 4.6 * len(PROBLEMS)), layout="constrained")
    for row, problem in zip(axes, PROBLEMS):
        paths = runs(problem)
        plot_paths(problem, paths, row[0], styles)
        plot_losses(problem, paths, row[1], styles)
        row[0].legend(fontsize=8, loc="lower right")
        row[1].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_relative_updates(runs: dict[str, list[list[np.ndarray]]], layer_names: Sequence[str], lr: float):
    """Bars of ‖θ_t - θ_{t-1}‖ / ‖θ_{t-1}‖ per tensor ("layer"), averaged over the steps, one bar per run."""
    fig, ax = plt.subplots(figsize=(8.5, 4), layout="constrained")
    width = 0.8 / len(runs)
    for k, (label, thetas) in enumerate(runs.items()):
        rel = [[np.linalg.norm(b - a) / np.linalg.norm(a) for a, b in zip(x, y)] for x, y in pairwise(thetas)]
        ax.bar(np.arange(len(layer_names)) + k * width, np.mean(rel, axis=0), width, label=label)
    ax.axhline(lr, color="k", ls="--", lw=1, label=r"$\alpha$")
    ax.set_xticks(np.arange(len(layer_names)) + width * (len(runs) - 1) / 2, layer_names)
    ax.set(yscale="log", ylabel=r"mean $\|\theta_t - \theta_{t-1}\| \,/\, \|\theta_{t-1}\|$")
    ax.set_title(f"Relative update per layer, mean over {len(thetas) - 1} steps")
    ax.legend(fontsize=8)
    return fig


# ---- state: trace and compare --------------------------------------------------------------------------------
def _show(name: str, value: Any, symbols: dict[str, str]) -> None:
    label = f"{name} ({symbols[name]})" if name in symbols else name
    if value is None:
        print(f"  {label:<26} None")
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a nested State (a wrapper's base rule)
        for field in value._fields:
            _show(f"{name}.{field}", getattr(value, field), symbols)
    elif isinstance(value, list) and value and isinstance(value[0], list):  # Scout's history of snapshots
        print(f"  {label:<26} {len(value)} snapshot(s) of the weights since the last sync")
    elif isinstance(value, list):
        for i, x in enumerate(value):
            print(f"  {label + f'[{i}]':<26} {np.array2string(np.asarray(x), prefix=' ' * 29)}")
    else:
        print(f"  {label:<26} {value}")


def show_state(state: Any, symbols: dict[str, str] | None = None) -> None:
    """Print every field of a reference State, tensor by tensor (``symbols`` maps field -> the paper's symbol)."""
    for field in state._fields:
        _show(field, getattr(state, field), symbols or {})


def trace(rule: Any, params: list[np.ndarray], grads: Sequence[list[np.ndarray]], symbols=None, **hp: Any) -> Any:
    """Take len(grads) steps of a reference rule and print θ and every State field after each one."""
    state = rule.init(params, **hp)
    print("before the first step")
    _show("θ", params, {})
    for t, g in enumerate(grads, start=1):
        params, state = rule.step(params, g, state, **hp)
        print(f"after step {t}, fed g = {[np.asarray(x).tolist() for x in g]}")
        _show("θ", params, {})
        show_state(state, symbols)
    return params, state


def random_grads(shapes: Sequence[tuple[int, ...]], steps: int, seed: int = 0, scale: float = 1.0):
    """Tiny random parameters and a gradient sequence for them (a seeded normal walk)."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in shapes]
    grads = [[scale * rng.standard_normal(s) for s in shapes]]
    for _ in range(steps - 1):
        grads.append([g + 0.3 * scale * rng.standard_normal(g.shape) for g in grads[-1]])
    return params, grads


def layered(norms: Sequence[float], grad_scales: Sequence[float], steps: int = 10, size: int = 16, seed: int = 0):
    """Random "layers" of ``size`` elements with the given norms, and gradients of the given scales per layer."""
    rng = np.random.default_rng(seed)
    params = [n * v / np.linalg.norm(v) for n, v in zip(norms, (rng.standard_normal(size) for _ in norms))]
    _, grads = random_grads([(size,)] * len(norms), steps, seed=seed + 1)
    return params, [[s * g for s, g in zip(grad_scales, step)] for step in grads]


def _torch_buffer(opt: torch.optim.Optimizer, p: torch.Tensor, name: str) -> np.ndarray:
    *path, key = name.split(".")
    for seg in path:
        opt = getattr(opt, f"{seg}_optimizer")
    return opt.state[p][key].detach().numpy()


def _ref_buffer(state: Any, name: str, i: int) -> np.ndarray:
    for seg in name.split("."):
        state = getattr(state, seg)
    return np.asarray(state[i])


def agreement(
    make: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
    rule: Any,
    params: list[np.ndarray],
    grads: Sequence[list[np.ndarray]],
    state: Sequence[str],
    **hp: Any,
) -> None:
    """Run the torch optimizer (float64) and the reference side by side on the same gradients.

    Prints, after every step, max |torch - reference| over the parameters and over each state buffer, then
    hands the same scenario to ``holocron_torch.testing.run_case`` (which raises ``Mismatch`` on a difference
    beyond its float64 tolerance).
    """
    print(f"hyperparameters: {hp}")
    tensors = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    opt = make([{"params": tensors, **hp}])
    ref_params = [p.copy() for p in params]
    ref_state = rule.init(ref_params, **hp)
    names = ("θ", *state)
    print(f"{'step':>4}  " + "  ".join(f"{'max|Δ' + n + '|':>12}" for n in names))
    worst = 0.0
    for t, g in enumerate(grads, start=1):
        for p, gi in zip(tensors, g):
            p.grad = torch.tensor(gi, dtype=torch.float64)
        opt.step()
        ref_params, ref_state = rule.step(ref_params, g, ref_state, **hp)
        row = [max(float(np.max(np.abs(p.detach().numpy() - r))) for p, r in zip(tensors, ref_params))]
        for name in state:
            diffs = [_torch_buffer(opt, p, name) - _ref_buffer(ref_state, name, i) for i, p in enumerate(tensors)]
            row.append(max(float(np.max(np.abs(d))) for d in diffs))
        worst = max(worst, *row)
        print(f"{t:>4}  " + "  ".join(f"{x:12.3e}" for x in row))
    run_case(make, rule, Case(params=params, grads=list(grads), groups=[(list(range(len(params))), hp)]), state=state)
    print(f"largest difference: {worst:.3e}; run_case (float64 tolerance 1e-10, relative): no Mismatch")
