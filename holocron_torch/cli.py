"""``holocron-optim``: list the rules, compare optimizers on a small data set, plot their paths, verify a variant.

    holocron-optim list [NAME ...]
    holocron-optim compare --dataset digits --optimizers lamb adan --out out/compare
    holocron-optim trajectories --function rosen --optimizers lamb adan --out out/trajectories
    holocron-optim verify examples.lion:Lion examples.lion:lion_reference --state m

Every subcommand takes ``--help``. Bad arguments (an unknown optimizer, a hyperparameter outside its valid range,
an output folder that cannot be written) end with exit code 2 and one line on stderr; ``verify`` exits 1 when the
optimizer and the reference disagree. Names and valid ranges all come from the registry (``reference.RULES``).
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reference import BASE_RULES, RULES, WRAPPERS

__all__ = ["main"]

PROG = "holocron-optim"
#: optimizers from torch.optim that ``compare`` accepts besides the registry's, as baselines
BASELINES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
DATASETS = ("digits", "breast_cancer")
#: alternated so that curves that coincide (e.g. LAMB and RaLars after warm-up) both stay visible
_LINESTYLES = ("-", "--", "-.", ":")


class UsageError(Exception):
    """A bad argument found after parsing: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, exit code 2 (argparse's default prints the whole usage block first)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _need(module: str) -> Any:
    """Import an optional dependency of the CLI, or stop with a one-line hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"this command needs {module.split('.')[0]}: pip install 'holocron-torch[cli]'") from None


# ---- argument values ------------------------------------------------------------------------------------
def _literal(text: str) -> Any:
    """A hyperparameter value: a Python literal (0.01, (0.9, 0.99), True, None) or inf / nan."""
    low = text.strip().lower()
    special = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}
    special |= {"none": None, "true": True, "false": False}
    if low in special:
        return special[low]
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r} as a value (a number, a tuple such as (0.9,0.99), True/False/None, inf)"
        ) from None
    return tuple(value) if isinstance(value, list) else value


def _key_value(text: str) -> tuple[str | None, str, Any]:
    """``[OPTIMIZER:]KEY=VALUE`` -> (optimizer or None, key, value)."""
    head, sep, value = text.partition("=")
    if not sep or not head:
        raise argparse.ArgumentTypeError(f"expected [OPTIMIZER:]KEY=VALUE, got {text!r}")
    target, colon, key = head.rpartition(":")
    return (target.strip().lower() if colon else None), key.strip(), _literal(value)


def _lr(text: str) -> tuple[str | None, float]:
    """``VALUE`` (every optimizer) or ``OPTIMIZER=VALUE``."""
    target, sep, value = text.rpartition("=")
    try:
        lr = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VALUE or OPTIMIZER=VALUE with a number, got {text!r}") from None
    return (target.strip().lower() if sep else None), lr


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _names(values: Sequence[str]) -> list[str]:
    """Names given space- or comma-separated, lower-cased, each once."""
    out: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip().lower()
            if name and name not in out:
                out.append(name)
    return out


def _out_dir(path: str) -> Path:
    """Create --out (and its parents) and check that a file can be written there."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(f"cannot write into --out {path!r}: {e.strerror or e}") from None
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return repr(value)


# ---- hyperparameters per optimizer ----------------------------------------------------------------------
def _label(name: str) -> str:
    """How an optimizer name reads in tables and legends: the class name(s)."""
    if name in BASELINES:
        return f"torch {BASELINES[name]}"
    from holocron_torch.optim.factory import resolve

    base, wrapper = resolve(name)
    return f"{wrapper.cls}({base.cls})" if wrapper is not None else base.cls


def _settings(
    names: list[str], lrs: list[tuple[str | None, float]], hps: list[tuple[str | None, str, Any]], default_lr: float
) -> dict[str, dict[str, Any]]:
    """The keyword arguments of each named optimizer, validated against the registry (UsageError if not)."""
    from holocron_torch.optim.factory import resolve, split_hyperparameters

    for target, *_ in [*lrs, *hps]:
        if target is not None and target not in names:
            raise UsageError(f"{target!r} is set by --lr/--hp but not among the optimizers {names}")
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        hp: dict[str, Any] = {"lr": default_lr}
        for target, value in lrs:
            if target in (None, name):
                hp["lr"] = value
        for target, key, value in hps:
            if target in (None, name):
                hp[key] = value
        try:
            if name in BASELINES:
                _check_baseline(name, hp)
                out[name] = hp
                continue
            base_hp, wrapper_hp = split_hyperparameters(name, hp)
            base, wrapper = resolve(name)
            base.validate({k: v for k, v in base_hp.items() if k in base.defaults})
            if wrapper is not None:
                wrapper.validate(wrapper_hp)
        except (TypeError, ValueError) as e:
            raise UsageError(f"{name}: {e}") from None
        out[name] = hp
    return out


def _check_baseline(name: str, hp: dict[str, Any]) -> None:
    import torch

    getattr(torch.optim, BASELINES[name])([torch.zeros(1, requires_grad=True)], **hp)


def _resolve_names(names: list[str], *, baselines: bool) -> None:
    from holocron_torch.optim.factory import resolve

    if not names:
        raise UsageError("--optimizers names no optimizer")
    for name in names:
        if baselines and name in BASELINES:
            continue
        try:
            resolve(name)
        except ValueError as e:
            extra = f" (or a torch baseline: {', '.join(BASELINES)})" if baselines else ""
            raise UsageError(f"{e}{extra}") from None


# ---- list -------------------------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    wanted = _names(args.names) or list(RULES)
    for name in wanted:
        if name not in RULES:
            raise UsageError(f"unknown rule {name!r}; valid names: {', '.join(RULES)}")
    for i, name in enumerate(wanted):
        rule = RULES[name]
        kind = "wrapper, around any base optimizer" if rule.wrapper else "rule"
        optional = ", ".join(f"{k} (with {v})" for k, v in rule.optional_state.items())
        state = ", ".join(rule.state) + (f"; {optional}" if optional else "")
        print(("\n" if i else "") + f"{rule.name}: holocron_torch.optim.{rule.cls} ({kind}; {rule.paper})")
        print(f"  state: {state}")
        width = max(len(h.name) for h in rule.hypers)
        dwidth = max([len("default")] + [len(_fmt(h.default)) for h in rule.hypers])
        rwidth = max([len("valid range")] + [len(h.range_text()) for h in rule.hypers])
        print(f"  {'':<{width}}  {'default':<{dwidth}}  {'valid range':<{rwidth}}  meaning")
        for h in rule.hypers:
            print(f"  {h.name:<{width}}  {_fmt(h.default):<{dwidth}}  {h.range_text():<{rwidth}}  {h.doc}")
    if any(RULES[n].wrapper for n in wanted):
        base = next(iter(BASE_RULES))
        print(
            f"\nWrappers compose with a base by name: <wrapper>_<base>, e.g. {next(iter(WRAPPERS))}_{base} "
            "(in compare, trajectories and holocron_torch.optim.create)."
        )
    return 0


# ---- compare ----------------------------------------------------------------------------------------------
def _dataset(name: str, seed: int) -> dict[str, Any]:
    """The data set, split 75/25 (stratified, fixed seed) and standardised with the training split's statistics."""
    datasets = _need("sklearn.datasets")
    selection = _need("sklearn.model_selection")
    import numpy as np
    import torch

    bunch = getattr(datasets, f"load_{name}")()
    x_train, x_test, y_train, y_test = selection.train_test_split(
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


def _train(
    name: str, hp: dict[str, Any], data: dict[str, Any], args: argparse.Namespace, steps: int, width: int
) -> list[tuple]:
    """One run: (step, loss, accuracy, seconds) after every step."""
    import torch
    from torch.nn.functional import cross_entropy

    from holocron_torch.optim import create, weight_decay_groups

    tqdm = _need("tqdm").tqdm
    torch.manual_seed(args.seed)  # the same initial weights for every optimizer
    model = torch.nn.Sequential(
        torch.nn.Linear(data["features"], args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, data["classes"])
    )
    if name in BASELINES:  # the same param groups as create() makes: no decay on biases
        rest = {k: v for k, v in hp.items() if k != "weight_decay"}
        groups = weight_decay_groups(model, hp["weight_decay"]) if hp.get("weight_decay") else model.parameters()
        opt = getattr(torch.optim, BASELINES[name])(groups, **rest)
    else:
        opt = create(name, model, **hp)
    x, y = data["x_train"], data["y_train"]
    n = len(y)
    batch = args.batch_size or n
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))
    cursor, seconds, rows = 0, 0.0, []
    bar = tqdm(range(1, steps + 1), desc=f"{name:<{width}}", unit="step", disable=args.no_progress, file=sys.stderr)
    for step in bar:
        if cursor + batch > n:  # a new epoch: a new order (the same for every optimizer)
            order, cursor = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed + step)), 0
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


def _tidy_axes(ax: Any, values: Any, *, integer_x: bool = True) -> None:
    """Integer step ticks; on a log axis spanning less than a decade, plain numbers instead of m×10^e."""
    import numpy as np

    ticker = _need("matplotlib.ticker")
    if integer_x:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if ax.get_yscale() == "log" and v.size and v.max() < 10 * v.min():
        plain = ticker.FuncFormatter(lambda y, _: f"{y:.3g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)


def _plot_compare(path: Path, runs: dict[str, list[tuple]], settings: dict, title: str) -> None:
    figure = _need("matplotlib.figure")
    fig = figure.Figure(figsize=(12, 4.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for i, (name, rows) in enumerate(runs.items()):
        steps = [r[0] for r in rows]
        label = f"{name} (lr {settings[name]['lr']:g})"
        style = dict(label=label, linewidth=1.5, color=f"C{i % 10}", linestyle=_LINESTYLES[i % len(_LINESTYLES)])
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
    fig.savefig(path, dpi=110)


def _cmd_compare(args: argparse.Namespace) -> int:
    names = _names(args.optimizers)
    _resolve_names(names, baselines=True)
    settings = _settings(names, args.lr or [], args.hp or [], args.default_lr)
    out = _out_dir(args.out)
    import torch

    data = _dataset(args.dataset, args.seed)
    n_train = len(data["y_train"])
    if args.batch_size and args.batch_size > n_train:
        raise UsageError(f"--batch-size {args.batch_size} is larger than the training split ({n_train} samples)")
    batch = args.batch_size or n_train
    steps = args.steps if args.epochs is None else args.epochs * (n_train // batch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend with each other
    try:
        width = max(len(n) for n in names)
        runs = {name: _train(name, settings[name], data, args, steps, width) for name in names}
    finally:
        torch.set_num_threads(threads)

    stem = f"compare-{args.dataset}"
    png, csv_path, json_path = out / f"{stem}.png", out / f"{stem}.csv", out / f"{stem}.json"
    mode = "full batch" if not args.batch_size else f"batches of {batch}"
    length = f"{steps} steps" if args.epochs is None else f"{steps} steps ({args.epochs} epochs)"
    model = f"MLP {data['features']}-{args.hidden}-{data['classes']}"
    title = (
        f"{args.dataset} ({n_train} training samples, {len(data['y_test'])} held out): {model}, {mode}, "
        f"{length}, seed {args.seed}"
    )
    _plot_compare(png, runs, settings, title)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["optimizer", "step", "loss", "accuracy", "seconds"])
        for name, rows in runs.items():
            writer.writerows([name, step, f"{loss:.6g}", f"{acc:.6g}", f"{sec:.6f}"] for step, loss, acc, sec in rows)
    summary = {
        "dataset": args.dataset,
        "model": model,
        "train_samples": n_train,
        "test_samples": len(data["y_test"]),
        "batch_size": batch,
        "steps": steps,
        "seed": args.seed,
        "files": {"png": str(png), "csv": str(csv_path)},
        "optimizers": [
            {
                "name": name,
                "class": _label(name),
                "hyperparameters": _jsonable(settings[name]),
                "final_loss": _jsonable(rows[-1][1]),
                "final_accuracy": rows[-1][2],
                "best_accuracy": max(r[2] for r in rows),
                "seconds": rows[-1][3],
                "ms_per_step": 1000 * rows[-1][3] / len(rows),
            }
            for name, rows in runs.items()
        ],
    }
    json_path.write_text(json.dumps(summary, indent=2) + "\n")

    print(f"\n{title}")
    width = max(len(n) for n in names + ["optimizer"])
    print(f"{'optimizer':<{width}}  {'lr':>8}  {'final loss':>10}  {'accuracy':>8}  {'ms/step':>7}")
    for name, rows in runs.items():
        _, loss, acc, sec = rows[-1]
        lr = settings[name]["lr"]
        print(f"{name:<{width}}  {lr:>8g}  {loss:>10.3e}  {100 * acc:>7.1f}%  {1000 * sec / len(rows):>7.2f}")
    print(f"wrote {csv_path} and {json_path}")
    print(png)
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# ---- trajectories -----------------------------------------------------------------------------------------
def _beale(x: Any) -> Any:
    a, b = x[0], x[1]
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def _beale_der(x: Any) -> Any:
    import numpy as np

    a, b = x[0], x[1]
    t1, t2, t3 = 1.5 - a + a * b, 2.25 - a + a * b**2, 2.625 - a + a * b**3
    da = 2 * t1 * (b - 1) + 2 * t2 * (b**2 - 1) + 2 * t3 * (b**3 - 1)
    db = 2 * t1 * a + 2 * t2 * 2 * a * b + 2 * t3 * 3 * a * b**2
    return np.array([da, db])


def _bowl(x: Any) -> Any:
    return 0.5 * x[0] ** 2 + 5.0 * x[1] ** 2


def _bowl_der(x: Any) -> Any:
    import numpy as np

    return np.array([x[0], 10.0 * x[1]])


def _functions() -> dict[str, dict[str, Any]]:
    """The 2-d test functions: f, its gradient, the minimum, a default start and the plotted box."""
    from scipy.optimize import rosen, rosen_der

    return {
        "rosen": dict(
            f=rosen,
            grad=rosen_der,
            title="Rosenbrock (scipy.optimize.rosen)",
            minimum=(1.0, 1.0),
            start=(-1.5, 2.0),
            box=((-2.0, 2.0), (-1.0, 3.0)),
        ),
        "beale": dict(
            f=_beale,
            grad=_beale_der,
            title="Beale",
            minimum=(3.0, 0.5),
            start=(1.0, 1.5),
            box=((-1.0, 4.0), (-1.5, 2.0)),
        ),
        "bowl": dict(
            f=_bowl,
            grad=_bowl_der,
            title="quadratic bowl 0.5 x² + 5 y² (condition number 10)",
            minimum=(0.0, 0.0),
            start=(-3.0, 1.5),
            box=((-3.5, 1.5), (-2.0, 2.0)),
        ),
    }


def _path(name: str, hp: dict[str, Any], fn: dict[str, Any], start: Any, steps: int) -> Any:
    """The iterates θ_0..θ_T of the NumPy reference rule ``name`` (stops early if they leave the finite)."""
    import numpy as np

    from holocron_torch.optim.factory import resolve, split_hyperparameters

    base, wrapper = resolve(name)
    base_hp, wrapper_hp = split_hyperparameters(name, hp)
    params = [np.array(start, dtype=np.float64)]
    if wrapper is None:
        state = base.module.init(params, **base_hp)

        def step(params: Any, grads: Any, state: Any) -> Any:
            return base.module.step(params, grads, state, **base_hp)
    else:
        state = wrapper.module.init(params, base.module, base_hp, **wrapper_hp)

        def step(params: Any, grads: Any, state: Any) -> Any:
            return wrapper.module.step(params, grads, state, base.module, base_hp, **wrapper_hp)

    points = [params[0].copy()]
    for _ in range(steps):
        params, state = step(params, [fn["grad"](params[0])], state)
        if not np.all(np.isfinite(params[0])):
            break
        points.append(np.array(params[0], dtype=np.float64))
    return np.array(points)


def _cmd_trajectories(args: argparse.Namespace) -> int:
    import numpy as np

    names = _names(args.optimizers) if args.optimizers else list(BASE_RULES)
    _resolve_names(names, baselines=False)
    settings = _settings(names, args.lr or [], args.hp or [], args.default_lr)
    out = _out_dir(args.out)
    fn = _functions()[args.function]
    start = fn["start"] if args.start is None else args.start
    paths = {name: _path(name, settings[name], fn, start, args.steps) for name in names}

    figure = _need("matplotlib.figure")
    colors = _need("matplotlib.colors")
    fig = figure.Figure(figsize=(13, 5.2), layout="constrained")
    ax, curve = fig.subplots(1, 2, width_ratios=(1.25, 1))
    (x0, x1), (y0, y1) = fn["box"]
    xs, ys = np.meshgrid(np.linspace(x0, x1, 400), np.linspace(y0, y1, 400))
    zs = fn["f"](np.stack([xs, ys]))
    f_min = fn["f"](np.array(fn["minimum"]))
    gap = zs - f_min
    low = max(float(np.min(gap[gap > 0])), float(np.max(gap)) * 1e-6)
    levels = np.logspace(np.log10(low), np.log10(float(np.max(gap))), 24)
    ax.contourf(xs, ys, gap, levels=levels, norm=colors.LogNorm(), cmap="Blues_r", alpha=0.3, extend="both")
    ax.contour(xs, ys, gap, levels=levels, norm=colors.LogNorm(), colors="0.6", linewidths=0.4)
    for i, (name, pts) in enumerate(paths.items()):
        style = dict(color=f"C{i % 10}", linestyle=_LINESTYLES[i % len(_LINESTYLES)], linewidth=1.5, label=name)
        ax.plot(pts[:, 0], pts[:, 1], **style)
        ax.plot(pts[-1, 0], pts[-1, 1], "o", color=style["color"], markersize=6, markeredgecolor="k", zorder=4)
        values = np.maximum([fn["f"](p) - f_min for p in pts], 1e-300)
        curve.plot(np.arange(len(pts)), values, **style)
    ax.plot(*start, "o", color="k", markersize=8, label=f"start {tuple(float(s) for s in start)}", zorder=5)
    ax.plot(*fn["minimum"], "*", color="gold", markersize=16, markeredgecolor="k", label="minimum", zorder=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(r"paths (contours: log-spaced levels of $f - f^*$; dot: last iterate)", fontsize="medium")
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    curve.set_yscale("log")
    curve.set_xlabel("step")
    curve.set_ylabel(r"$f(\theta_t) - f^*$ (log scale)")
    curve.set_title("gap to the minimum value", fontsize="medium")
    curve.grid(True, alpha=0.3)
    _tidy_axes(curve, [fn["f"](p) - f_min for pts in paths.values() for p in pts])
    lrs = sorted({settings[n]["lr"] for n in names})
    lr_text = f"lr {lrs[0]:g}" if len(lrs) == 1 else "lr per optimizer"
    fig.suptitle(f"{fn['title']}: {args.steps} steps of the NumPy reference rules from {tuple(start)}, {lr_text}")
    png = out / f"trajectories-{args.function}.png"
    fig.savefig(png, dpi=110)

    width = max(len(n) for n in names + ["optimizer"])
    print(f"{'optimizer':<{width}}  {'lr':>8}  {'f(θ_T) - f*':>12}  {'|θ_T - θ*|':>11}  {'steps':>6}")
    for name, pts in paths.items():
        gap_t = fn["f"](pts[-1]) - f_min
        dist = float(np.linalg.norm(pts[-1] - np.array(fn["minimum"])))
        diverged = "" if len(pts) == args.steps + 1 else "  (left the finite numbers)"
        print(
            f"{name:<{width}}  {settings[name]['lr']:>8g}  {gap_t:>12.3e}  {dist:>11.3e}  {len(pts) - 1:>6d}{diverged}"
        )
    print(png)
    return 0


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y (two numbers), got {text!r}") from None
    return x, y


# ---- verify -----------------------------------------------------------------------------------------------
def _import(spec: str, what: str, *, module_ok: bool = False) -> Any:
    """``MODULE:NAME`` imported from the current folder or sys.path (``MODULE`` alone too, if ``module_ok``)."""
    module_name, sep, attr = spec.partition(":")
    if not module_name or (sep and not attr) or (not sep and not module_ok):
        example = "examples.lion:lion_reference or reference.lamb" if module_ok else "examples.lion:Lion"
        raise UsageError(f"{what} must be MODULE:NAME (e.g. {example}), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # an ImportError, or whatever the user's module raises on import
        raise UsageError(f"cannot import {module_name!r} for {what}: {type(e).__name__}: {e}") from None
    obj = module
    for part in attr.split(".") if attr else []:
        if not hasattr(obj, part):
            raise UsageError(f"{module_name!r} has no attribute {attr!r} (for {what})")
        obj = getattr(obj, part)
    return obj


def _hyper_spec(text: str) -> tuple[str, list[tuple[float, float] | tuple[Any]]]:
    """``NAME=LO:HI`` (floats in [LO, HI]), ``NAME=LO:HI,LO:HI`` (a tuple of such), ``NAME=VALUE`` (fixed).

    Returns the name and one part per tuple element: (lo, hi) for a range, (value,) for a fixed value.
    """
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=LO:HI, NAME=LO:HI,LO:HI or NAME=VALUE, got {text!r}")
    if ":" not in spec:
        return name.strip(), [(_literal(spec),)]
    parts: list[tuple[float, float] | tuple[Any]] = []
    for part in spec.split(","):
        lo, colon, hi = part.partition(":")
        if not colon:
            parts.append((_literal(part),))
            continue
        try:
            a, b = float(lo), float(hi)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected LO:HI with two numbers, got {part!r}") from None
        if not (math.isfinite(a) and math.isfinite(b) and a <= b):
            raise argparse.ArgumentTypeError(f"{name}: expected finite LO <= HI, got {part!r}")
        parts.append((a, b))
    return name.strip(), parts


def _strategy(parts: list[tuple[float, float] | tuple[Any]]) -> Any:
    from hypothesis import strategies as st

    drawn = [st.floats(*p) if len(p) == 2 else st.just(p[0]) for p in parts]
    return drawn[0] if len(drawn) == 1 else st.tuples(*drawn)


def _describe(parts: list[tuple[float, float] | tuple[Any]]) -> str:
    text = [f"[{p[0]:g}, {p[1]:g}]" if len(p) == 2 else repr(p[0]) for p in parts]
    return text[0] if len(text) == 1 else "(" + ", ".join(text) + ")"


def _keeps_step(build: Callable[..., Any]) -> bool:
    """Whether the optimizer keeps ``state[p]["step"]`` (probed with one step on a small tensor, defaults)."""
    import torch

    try:
        p = torch.ones(3, dtype=torch.float64, requires_grad=True)
        opt = build([{"params": [p]}])
        p.grad = torch.full_like(p, 0.5)
        opt.step()
        return "step" in opt.state[p]
    except Exception:  # let verify itself report what goes wrong
        return True


def _cmd_verify(args: argparse.Namespace) -> int:
    hypothesis = _need("hypothesis")
    from hypothesis import HealthCheck
    from hypothesis import strategies as st

    from holocron_torch.testing import verify

    build = _import(args.optimizer, "OPTIMIZER")
    reference = _import(args.reference, "REFERENCE", module_ok=True)
    if not callable(build):
        raise UsageError(f"OPTIMIZER {args.optimizer!r} is not a class or callable")
    if not (callable(getattr(reference, "init", None)) and callable(getattr(reference, "step", None))):
        raise UsageError(f"REFERENCE {args.reference!r} needs init() and step() (a module or an object)")
    specs = dict(args.hyper or [("lr", [(1e-4, 0.1)])])
    hypers = {name: _strategy(parts) for name, parts in specs.items()}
    state = tuple(dict.fromkeys(n.strip() for v in args.state or [] for n in v.split(",") if n.strip()))
    compare_step = not args.no_step and _keeps_step(build)
    settings = hypothesis.settings
    previous = settings.get_current_profile_name()
    settings.register_profile(
        "holocron-optim verify",
        max_examples=args.max_examples,
        deadline=None,
        derandomize=not args.random,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    described = ", ".join(f"{k} in {_describe(parts)}" for k, parts in specs.items())
    step_text = "" if compare_step else " (no step count: not compared)"
    print(f"verifying {args.optimizer} against {args.reference}: state {list(state)}{step_text}; {described}")
    settings.load_profile("holocron-optim verify")
    try:
        verify(
            build,
            reference,
            hyperparameters=st.fixed_dictionaries(hypers),
            state=state,
            max_steps=args.max_steps,
            compare_step=compare_step,
        )
    except Exception as e:  # Mismatch (an AssertionError), or whatever the user's code raised
        kind = "mismatch" if isinstance(e, AssertionError) else f"error ({type(e).__name__})"
        print(f"FAIL: {kind}: {e}")
        notes = getattr(e, "__notes__", [])
        for note in notes:
            if note.startswith("Explanation"):  # Hypothesis' coverage notes point into the harness, not at the user
                break
            print(note)
        return 1
    finally:
        settings.load_profile(previous)
    print(f"pass: {args.max_examples} scenarios, up to {args.max_steps} steps each")
    return 0


# ---- the parser -------------------------------------------------------------------------------------------
def _add_hyper_options(p: argparse.ArgumentParser, default_lr: float) -> None:
    p.add_argument(
        "--lr",
        action="append",
        type=_lr,
        metavar="[NAME=]VALUE",
        help=f"learning rate of every optimizer, or NAME=VALUE for one (repeatable; default {default_lr:g})",
    )
    p.add_argument(
        "--hp",
        action="append",
        type=_key_value,
        metavar="[NAME:]KEY=VALUE",
        help="another hyperparameter, for every optimizer or NAME: only, e.g. --hp adan:betas=(0.98,0.92,0.99) "
        "or --hp weight_decay=0.01 (repeatable; checked against the registry's valid ranges)",
    )
    p.set_defaults(default_lr=default_lr)


def _parser() -> argparse.ArgumentParser:
    bases = ", ".join(BASE_RULES)
    wrappers = ", ".join(WRAPPERS)
    parser = _Parser(
        prog=PROG,
        description="holocron-torch's optimizers from the command line. Optimizer names: the rules "
        f"({bases}) or <wrapper>_<base> with a wrapper in ({wrappers}), case-insensitive.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "list",
        help="every rule with its hyperparameters, defaults and valid ranges",
        description="Every rule of the registry with its hyperparameters: name, default, valid range, meaning.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="only these rules (default: all)")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser(
        "compare",
        help="train the same small MLP with several optimizers and plot loss and accuracy",
        description="Train the same MLP (one hidden ReLU layer), from the same seed, once per optimizer, on a "
        "scikit-learn data set (bundled, no download), split 75/25 and standardised. By default every step is "
        "full-batch (--batch-size for minibatches, reshuffled each epoch, the same order for every optimizer). "
        "After every step the full training loss and the held-out accuracy are recorded. Writes into --out: "
        "compare-<dataset>.png (loss and accuracy curves), .csv (optimizer, step, loss, accuracy, seconds: one "
        "row per step per optimizer; seconds = training time so far, evaluation excluded) and .json (the "
        "summary), prints a summary table and, last, the path of the PNG. Torch runs on one thread here. "
        "With a weight_decay, biases and norm layers are not decayed (holocron_torch.optim.weight_decay_groups). "
        f"Besides the registry's names, torch baselines are accepted: {', '.join(BASELINES)}.",
    )
    p.add_argument("--dataset", choices=DATASETS, default="digits", help="default: digits")
    p.add_argument(
        "--optimizers",
        nargs="+",
        default=list(BASE_RULES),
        metavar="NAME",
        help="optimizers to compare, space- or comma-separated (default: every base rule)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive, default=300, help="optimizer steps per run (default 300)")
    length.add_argument("--epochs", type=_positive, help="passes over the training split (instead of --steps)")
    p.add_argument("--batch-size", type=_positive, help="minibatch size (default: the whole training split)")
    p.add_argument("--hidden", type=_positive, default=64, help="width of the hidden layer (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the split and the batches (default 0)")
    _add_hyper_options(p, 0.01)
    p.add_argument("--out", default="out/compare", help="output folder, created if needed (default out/compare)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_cmd_compare)

    p = sub.add_parser(
        "trajectories",
        help="plot the paths of optimizers on a 2-d test function",
        description="Run the NumPy reference rules (the documented equations, float64) on a 2-d test function "
        "from one start and plot their paths over log-spaced contours, with f(θ_t) - f* per step beside it. "
        "Writes trajectories-<function>.png into --out, prints a table and, last, the path of the PNG.",
    )
    p.add_argument("--function", choices=("rosen", "beale", "bowl"), default="rosen", help="default: rosen")
    p.add_argument(
        "--optimizers",
        nargs="+",
        metavar="NAME",
        help="rules to run, space- or comma-separated (default: every base rule)",
    )
    p.add_argument("--steps", type=_positive, default=2000, help="steps per rule (default 2000)")
    p.add_argument("--start", type=_point, metavar="X,Y", help="starting point (default: per function)")
    _add_hyper_options(p, 0.02)
    p.add_argument("--out", default="out/trajectories", help="output folder (default out/trajectories)")
    p.set_defaults(run=_cmd_trajectories)

    p = sub.add_parser(
        "verify",
        help="property-test your torch optimizer against your NumPy reference (holocron_torch.testing.verify)",
        description="Import OPTIMIZER (a torch optimizer class, or a callable taking param-group dicts) and "
        "REFERENCE (a module or object with init/step) as MODULE:NAME (the current folder is importable) and run "
        "holocron_torch.testing.verify: Hypothesis draws shapes, values, 1..--max-steps steps, one or two param "
        "groups and the hyperparameters, and compares parameters and the --state buffers after every step. "
        "Prints 'pass', or the shrunk counterexample and exits 1. The step count is compared when the optimizer "
        "keeps state['step'] (--no-step: never).",
    )
    p.add_argument("optimizer", metavar="OPTIMIZER", help="MODULE:CLASS, e.g. examples.lion:Lion")
    p.add_argument(
        "reference",
        metavar="REFERENCE",
        help="MODULE:NAME or a MODULE with init/step, e.g. examples.lion:lion_reference or reference.lamb",
    )
    p.add_argument("--state", action="append", metavar="NAMES", help="state buffers to compare, e.g. m,v")
    p.add_argument(
        "--hyper",
        action="append",
        type=_hyper_spec,
        metavar="NAME=LO:HI",
        help="a hyperparameter drawn from [LO, HI]; LO:HI,LO:HI draws a tuple (betas); NAME=VALUE fixes it "
        "(repeatable; default: lr=1e-4:0.1)",
    )
    p.add_argument("--max-examples", type=_positive, default=100, help="scenarios to draw (default 100)")
    p.add_argument("--max-steps", type=_positive, default=20, help="longest run drawn (default 20)")
    p.add_argument("--no-step", action="store_true", help="never compare the step count")
    p.add_argument("--random", action="store_true", help="draw new scenarios each run (default: reproducible)")
    p.set_defaults(run=_cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``holocron-optim`` with ``argv`` (default: the command line); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad argument (2), already reported by argparse
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.run(args)
    except UsageError as e:
        message = " ".join(str(e).split())
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
