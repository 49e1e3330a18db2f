r"""Study tools: 2-d test functions, path runners, plots, a state tracer and the torch-against-reference check.

One module for everything that *shows* the rules at work: the notebooks (``notebooks/``), the documentation site
(``docs/``) and the ``holocron-optim trajectories`` / ``compare`` commands all import it.

Nothing here is an update rule. Every step is taken by ``reference`` (the float64 NumPy rules), by
``holocron_torch.optim`` or by ``torch.optim``; this module only defines the *test functions* the steps are taken
on, feeds the gradients, and records, prints and draws what comes out.

>>> from holocron_torch.study import FUNCTIONS, path
>>> points = path("adan", FUNCTIONS["rosen"], steps=100, lr=0.02)  # θ_0 .. θ_100 of reference.adan
>>> points.shape
(101, 2)

The test functions (each a :class:`Problem`):

- ``rosen``: Rosenbrock's :math:`f(x, y) = (1 - x)^2 + 100 (y - x^2)^2`, minimum 0 at :math:`(1, 1)`;
- ``quadratic``: :math:`f(\theta) = \tfrac12 \theta^\top H \theta` with eigenvalues 1 and 50 on axes turned by
  30 degrees, so that no per-coordinate rescaling undoes the ill-conditioning; minimum 0 at the origin;
- ``beale``: Beale's function, minimum 0 at :math:`(3, 0.5)`;
- ``bowl``: :math:`f(x, y) = \tfrac12 x^2 + 5 y^2`, axis-aligned (condition number 10), minimum 0 at the origin.

matplotlib (plots), scikit-learn and tqdm (:func:`load_dataset`, :func:`train_mlp`) are imported only by the
functions that need them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from scipy.optimize import rosen, rosen_der

from holocron_torch.testing import Case, run_case, wrapped
from reference import RULES

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FUNCTIONS",
    "PROBLEMS",
    "QUADRATIC",
    "ROSENBROCK",
    "Problem",
    "adam",
    "agreement",
    "compare_figure",
    "describe",
    "layered",
    "load_dataset",
    "path",
    "plot_losses",
    "plot_paths",
    "plot_relative_updates",
    "random_grads",
    "run",
    "run_torch",
    "show_state",
    "trace",
    "train_mlp",
    "trajectories",
    "trajectory_figure",
    "unroll",
    "unroll_torch",
    "wrapper_rule",
]

#: how the tracer and the side-by-side check print arrays (only inside those functions)
PRINT_OPTIONS = dict(precision=6, suppress=False, linewidth=110)
#: alternated so that curves that coincide (e.g. LAMB and RaLars after warm-up) both stay visible
LINESTYLES = ("-", "--", "-.", ":")


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
    """A 2-d test function: value, gradient, a start point, the minimiser and the window to draw.

    ``f`` takes an array of shape ``(2, ...)`` and returns one value per point (as ``scipy.optimize.rosen``
    does); ``grad`` takes one point of shape ``(2,)``.
    """

    name: str
    f: Callable[[np.ndarray], Any]
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


def quadratic(x: np.ndarray) -> Any:
    """f(x) = ½ xᵀ H x, minimum 0 at the origin (x of shape (2, ...) gives one value per point, like rosen)."""
    return 0.5 * np.einsum("i...,ij,j...->...", x, HESSIAN, x)


def quadratic_der(x: np.ndarray) -> np.ndarray:
    """∇f(x) = H x."""
    return HESSIAN @ x


def beale(x: np.ndarray) -> Any:
    """Beale's function: (1.5 - a + ab)² + (2.25 - a + ab²)² + (2.625 - a + ab³)², minimum 0 at (3, 0.5)."""
    a, b = x[0], x[1]
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def beale_der(x: np.ndarray) -> np.ndarray:
    """The gradient of :func:`beale`."""
    a, b = x[0], x[1]
    t1, t2, t3 = 1.5 - a + a * b, 2.25 - a + a * b**2, 2.625 - a + a * b**3
    da = 2 * t1 * (b - 1) + 2 * t2 * (b**2 - 1) + 2 * t3 * (b**3 - 1)
    db = 2 * t1 * a + 2 * t2 * 2 * a * b + 2 * t3 * 3 * a * b**2
    return np.array([da, db])


def bowl(x: np.ndarray) -> Any:
    """½ x² + 5 y²: axis-aligned, condition number 10, minimum 0 at the origin."""
    return 0.5 * x[0] ** 2 + 5.0 * x[1] ** 2


def bowl_der(x: np.ndarray) -> np.ndarray:
    """The gradient of :func:`bowl`."""
    return np.array([x[0], 10.0 * x[1]])


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
BEALE = Problem("Beale", beale, beale_der, np.array([1.0, 1.5]), np.array([3.0, 0.5]), (-1, 4), (-1.5, 2))
BOWL = Problem(
    "quadratic bowl ½ x² + 5 y² (κ = 10)", bowl, bowl_der, np.array([-3.0, 1.5]), np.zeros(2), (-3.5, 1.5), (-2, 2)
)
#: the two functions every rule notebook runs on
PROBLEMS = (ROSENBROCK, QUADRATIC)
#: every test function, by the name ``holocron-optim trajectories --function`` takes
FUNCTIONS: dict[str, Problem] = {"rosen": ROSENBROCK, "beale": BEALE, "bowl": BOWL, "quadratic": QUADRATIC}


# ---- runners -------------------------------------------------------------------------------------------------
def run(rule: Any, problem: Problem, steps: int, *, start: Any = None, finite_only: bool = False, **hp: Any):
    """θ_0, ..., θ_steps of a reference rule (anything with ``init``/``step``) on ``problem``: shape (steps + 1, 2).

    ``start`` replaces the problem's start point. With ``finite_only``, the path stops before the first iterate
    that is not finite (so it can be shorter).
    """
    params = [np.array(problem.start if start is None else start, dtype=np.float64)]
    state = rule.init(params, **hp)
    points = [params[0].copy()]
    for _ in range(steps):
        params, state = rule.step(params, [problem.grad(params[0])], state, **hp)
        if finite_only and not np.all(np.isfinite(params[0])):
            break
        points.append(np.array(params[0], dtype=np.float64))
    return np.array(points)


def path(name: str, problem: Problem, steps: int, *, start: Any = None, **hp: Any) -> np.ndarray:
    """The iterates θ_0..θ_T of the reference rule registered as ``name`` (``lamb``, ``lookahead_adan``, ...).

    ``hp`` holds the base rule's and the wrapper's hyperparameters together; the path stops early if the iterates
    leave the finite numbers.
    """
    from holocron_torch.optim.factory import resolve, split_hyperparameters

    base, wrapper = resolve(name)
    split_hyperparameters(name, hp)  # refuses a name neither rule takes
    rule = base.module if wrapper is None else wrapper_rule(wrapper.name, base.name)
    return run(rule, problem, steps, start=start, finite_only=True, **hp)


def run_torch(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], problem: Problem, steps: int):
    """The same for a torch optimizer, on one float64 tensor of 2 elements (``make`` builds it from [θ])."""
    theta = torch.tensor(problem.start, dtype=torch.float64, requires_grad=True)
    opt = make([theta])
    points = [problem.start.copy()]
    for _ in range(steps):
        theta.grad = torch.from_numpy(problem.grad(theta.detach().numpy().copy()))
        opt.step()
        points.append(theta.detach().numpy().copy())
    return np.array(points)


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
def _gap(problem: Problem, points: np.ndarray) -> np.ndarray:
    """f(θ_t) - f(θ*) per point, at least 1e-300 so that a path sitting on the minimum stays on a log axis."""
    f_min = problem.f(problem.minimum)
    return np.maximum([problem.f(p) - f_min for p in points], 1e-300)


def plot_paths(problem: Problem, paths: dict[str, np.ndarray], ax: Axes, styles: dict | None = None) -> None:
    """Paths over the contours of f (log-spaced levels); ○ start, ★ minimum, × where each path ended.

    ``styles`` maps a label to extra keyword arguments for its line (e.g. ``{"Adam": {"ls": "--"}}``).
    """
    from matplotlib.colors import LogNorm

    xs = np.linspace(*problem.xlim, 300)
    ys = np.linspace(*problem.ylim, 300)
    X, Y = np.meshgrid(xs, ys)
    Z = problem.f(np.stack([X, Y])) - problem.f(problem.minimum) + 1e-3
    levels = np.logspace(np.log10(Z.min()), np.log10(Z.max()), 18)
    ax.contour(X, Y, Z, levels=levels, norm=LogNorm(), cmap="Greys", linewidths=0.6)
    starts = set()
    for label, points in paths.items():
        (line,) = ax.plot(points[:, 0], points[:, 1], label=label, **{"lw": 1.3, **(styles or {}).get(label, {})})
        ax.plot(*points[-1], "x", color=line.get_color(), ms=8, mew=2)
        starts.add(tuple(points[0]))
    for start in starts or {tuple(problem.start)}:
        ax.plot(*start, "o", color="k", ms=5)
    ax.plot(*problem.minimum, "*", color="gold", mec="k", ms=14)
    ax.set(xlim=problem.xlim, ylim=problem.ylim, xlabel=r"$\theta_1$", ylabel=r"$\theta_2$", title=problem.name)


def plot_losses(problem: Problem, paths: dict[str, np.ndarray], ax: Axes, styles: dict | None = None) -> None:
    """f(θ_t) - f(θ*) against t, on a log scale."""
    for label, points in paths.items():
        ax.semilogy(_gap(problem, points), label=label, **{"lw": 1.3, **(styles or {}).get(label, {})})
    ax.set(xlabel="step $t$", ylabel=r"$f(\theta_t) - f(\theta^*)$", title=f"{problem.name}: loss")
    ax.grid(True, which="major", alpha=0.3)


def trajectories(runs: Callable[[Problem], dict[str, np.ndarray]], title: str, styles=None) -> Figure:
    """One row per test function: the paths on its contours, and the loss curves; ``runs(problem)`` gives paths.

    Drawn with pyplot (a notebook shows it); see :func:`trajectory_figure` for one function without pyplot.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PROBLEMS), 2, figsize=(12, 4.6 * len(PROBLEMS)), layout="constrained")
    for row, problem in zip(axes, PROBLEMS):
        paths = runs(problem)
        plot_paths(problem, paths, row[0], styles)
        plot_losses(problem, paths, row[1], styles)
        row[0].legend(fontsize=8, loc="lower right")
        row[1].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def trajectory_figure(problem: Problem, paths: dict[str, np.ndarray], title: str) -> Figure:
    """Paths on the contours and their loss curves side by side, as a pyplot-free Figure (for ``savefig``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax, curve = fig.subplots(1, 2, width_ratios=(1.25, 1))
    styles = {name: {"ls": LINESTYLES[i % len(LINESTYLES)], "color": f"C{i % 10}"} for i, name in enumerate(paths)}
    plot_paths(problem, paths, ax, styles)
    plot_losses(problem, paths, curve, styles)
    _tidy_axes(curve, np.concatenate([_gap(problem, p) for p in paths.values()]))
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    curve.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return fig


def plot_relative_updates(runs: dict[str, list[list[np.ndarray]]], layer_names: Sequence[str], lr: float) -> Figure:
    """Bars of ‖θ_t - θ_{t-1}‖ / ‖θ_{t-1}‖ per tensor ("layer"), averaged over the steps, one bar per run."""
    import matplotlib.pyplot as plt

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


def _tidy_axes(ax: Axes, values: Any, *, integer_x: bool = True) -> None:
    """Integer step ticks; on a log axis spanning less than a decade, plain numbers instead of m×10^e."""
    from matplotlib import ticker

    if integer_x:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if ax.get_yscale() == "log" and v.size and v.max() < 10 * v.min():
        plain = ticker.FuncFormatter(lambda y, _: f"{y:.3g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)


# ---- a small real training run (holocron-optim compare) ------------------------------------------------------
def load_dataset(name: str, seed: int) -> dict[str, Any]:
    """A bundled scikit-learn data set (``digits``, ``breast_cancer``: no download), split 75/25 (stratified,
    seeded) and standardised with the training split's statistics, as float32/long tensors."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(datasets, f"load_{name}")()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.25, random_state=seed, stratify=bunch.target
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # digits has pixels that are always 0

    def tensor(x: Any, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype)

    return {
        "x_train": tensor((x_train - mean) / std, torch.float32),
        "y_train": tensor(y_train, torch.long),
        "x_test": tensor((x_test - mean) / std, torch.float32),
        "y_test": tensor(y_test, torch.long),
        "classes": len(bunch.target_names),
        "features": bunch.data.shape[1],
    }


def train_mlp(
    make: Callable[[torch.nn.Module], torch.optim.Optimizer],
    data: dict[str, Any],
    *,
    steps: int,
    seed: int = 0,
    hidden: int = 64,
    batch_size: int | None = None,
    label: str = "",
    progress: bool = True,
) -> list[tuple[int, float, float, float]]:
    """Train an MLP (one hidden ReLU layer) with the optimizer ``make(model)`` builds; (step, loss, accuracy,
    seconds) after every step: the full training loss in float64, the held-out accuracy, the training time so far.

    The weights and the batch order depend on ``seed`` only, so every optimizer sees the same ones.
    """
    from torch.nn.functional import cross_entropy
    from tqdm import tqdm

    torch.manual_seed(seed)  # the same initial weights for every optimizer
    model = torch.nn.Sequential(
        torch.nn.Linear(data["features"], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, data["classes"])
    )
    opt = make(model)
    x, y = data["x_train"], data["y_train"]
    n = len(y)
    batch = batch_size or n
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cursor, seconds, rows = 0, 0.0, []
    bar = tqdm(range(1, steps + 1), desc=label, unit="step", disable=not progress, file=sys.stderr)
    for step in bar:
        if cursor + batch > n:  # a new epoch: a new order (the same for every optimizer)
            order, cursor = torch.randperm(n, generator=torch.Generator().manual_seed(seed + step)), 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        seconds += time.perf_counter() - start
        with torch.no_grad():
            loss = cross_entropy(model(x).double(), y).item()  # float64: a tiny loss stays > 0 on the log axis
            accuracy = (model(data["x_test"]).argmax(dim=1) == data["y_test"]).double().mean().item()
        rows.append((step, loss, accuracy, seconds))
        bar.set_postfix(loss=f"{loss:.3g}", acc=f"{accuracy:.3f}", refresh=False)
    bar.close()
    return rows


def compare_figure(runs: dict[str, list[tuple]], lrs: dict[str, float], title: str) -> Figure:
    """Training loss (log scale) and held-out accuracy per step, one line per run (``lrs`` labels them)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for i, (name, rows) in enumerate(runs.items()):
        steps = [r[0] for r in rows]
        label = f"{name} (lr {lrs[name]:g})"
        style = dict(label=label, linewidth=1.5, color=f"C{i % 10}", linestyle=LINESTYLES[i % len(LINESTYLES)])
        loss_ax.plot(steps, [r[1] for r in rows], **style)
        acc_ax.plot(steps, [100 * r[2] for r in rows], **style)
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("training loss (cross-entropy, log scale)")
    loss_ax.set_title("training loss")
    acc_ax.set_xlabel("step")
    acc_ax.set_ylabel("held-out accuracy (%)")
    acc_ax.set_title("held-out accuracy (25% of the data)")
    # zoomed on the end of the runs (where they differ), with every run's last accuracy in view
    worst_final = min((100 * rows[-1][2] for rows in runs.values()), default=0.0)
    acc_ax.set_ylim(max(0.0, min(worst_final - 10.0, 70.0)), 100.5)
    _tidy_axes(loss_ax, [r[1] for rows in runs.values() for r in rows])
    _tidy_axes(acc_ax, [])
    for ax in (loss_ax, acc_ax):
        ax.grid(True, which="major", alpha=0.3)
    loss_ax.grid(True, which="minor", alpha=0.1)
    acc_ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return fig


def save(fig: Figure, file: str | Path, dpi: int = 110) -> Path:
    """Write a figure (PNG by the suffix) and return its path."""
    fig.savefig(file, dpi=dpi)
    return Path(file)


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
    with np.printoptions(**PRINT_OPTIONS):
        for field in state._fields:
            _show(field, getattr(state, field), symbols or {})


def trace(rule: Any, params: list[np.ndarray], grads: Sequence[list[np.ndarray]], symbols=None, **hp: Any) -> Any:
    """Take len(grads) steps of a reference rule and print θ and every State field after each one."""
    state = rule.init(params, **hp)
    with np.printoptions(**PRINT_OPTIONS):
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
    *nested, key = name.split(".")
    for seg in nested:
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
