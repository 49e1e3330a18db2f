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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reference import BASE_RULES, RULES, WRAPPERS

__all__ = ["main"]

PROG = "holocron-optim"
#: optimizers from torch.optim that ``compare`` accepts besides the registry's, as baselines
BASELINES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
DATASETS = ("digits", "breast_cancer")


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
        dwidth = max([len("default")] + [len(h.default_text()) for h in rule.hypers])
        rwidth = max([len("valid range")] + [len(h.range_text()) for h in rule.hypers])
        print(f"  {'':<{width}}  {'default':<{dwidth}}  {'valid range':<{rwidth}}  meaning")
        for h in rule.hypers:
            print(f"  {h.name:<{width}}  {h.default_text():<{dwidth}}  {h.range_text():<{rwidth}}  {h.doc}")
    if any(RULES[n].wrapper for n in wanted):
        base = next(iter(BASE_RULES))
        print(
            f"\nWrappers compose with a base by name: <wrapper>_<base>, e.g. {next(iter(WRAPPERS))}_{base} "
            "(in compare, trajectories and holocron_torch.optim.create)."
        )
    return 0


# ---- compare ----------------------------------------------------------------------------------------------
def _train(
    name: str, hp: dict[str, Any], data: dict[str, Any], args: argparse.Namespace, steps: int, width: int
) -> list[tuple]:
    """One run (holocron_torch.study.train_mlp): (step, loss, accuracy, seconds) after every step."""
    import torch

    from holocron_torch.optim import create, weight_decay_groups
    from holocron_torch.study import train_mlp

    def make(model: torch.nn.Module) -> torch.optim.Optimizer:
        if name in BASELINES:  # the same param groups as create() makes: no decay on biases
            rest = {k: v for k, v in hp.items() if k != "weight_decay"}
            groups = weight_decay_groups(model, hp["weight_decay"]) if hp.get("weight_decay") else model.parameters()
            return getattr(torch.optim, BASELINES[name])(groups, **rest)
        return create(name, model, **hp)

    return train_mlp(
        make,
        data,
        steps=steps,
        seed=args.seed,
        hidden=args.hidden,
        batch_size=args.batch_size,
        label=f"{name:<{width}}",
        progress=not args.no_progress,
    )


def _cmd_compare(args: argparse.Namespace) -> int:
    names = _names(args.optimizers)
    _resolve_names(names, baselines=True)
    settings = _settings(names, args.lr or [], args.hp or [], args.default_lr)
    out = _out_dir(args.out)
    for module in ("sklearn", "tqdm", "matplotlib"):
        _need(module)
    import torch

    from holocron_torch.study import compare_figure, load_dataset

    data = load_dataset(args.dataset, args.seed)
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
    compare_figure(runs, {n: settings[n]["lr"] for n in runs}, title).savefig(png, dpi=110)
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
def _cmd_trajectories(args: argparse.Namespace) -> int:
    import numpy as np

    from holocron_torch.study import FUNCTIONS, path, trajectory_figure

    names = _names(args.optimizers) if args.optimizers else list(BASE_RULES)
    _resolve_names(names, baselines=False)
    settings = _settings(names, args.lr or [], args.hp or [], args.default_lr)
    out = _out_dir(args.out)
    _need("matplotlib")
    problem = FUNCTIONS[args.function]
    start = tuple(float(s) for s in (problem.start if args.start is None else args.start))
    paths = {name: path(name, problem, args.steps, start=start, **settings[name]) for name in names}
    lrs = sorted({settings[n]["lr"] for n in names})
    lr_text = f"lr {lrs[0]:g}" if len(lrs) == 1 else "lr per optimizer"
    title = f"{problem.name}: {args.steps} steps of the NumPy reference rules from {start}, {lr_text}"
    png = out / f"trajectories-{args.function}.png"
    trajectory_figure(problem, paths, title).savefig(png, dpi=110)

    f_min = problem.f(problem.minimum)
    width = max(len(n) for n in names + ["optimizer"])
    print(f"{'optimizer':<{width}}  {'lr':>8}  {'f(θ_T) - f*':>12}  {'|θ_T - θ*|':>11}  {'steps':>6}")
    for name, pts in paths.items():
        gap_t = problem.f(pts[-1]) - f_min
        dist = float(np.linalg.norm(pts[-1] - problem.minimum))
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
def _import_skipping_init(module_name: str) -> Any:
    """Import ``a.b.c`` without executing ``a/__init__.py`` or ``a/b/__init__.py`` (each parent package not yet
    imported is registered as an empty package over its folder): for a module whose package ``__init__`` pulls a
    dependency that cannot load (timm's imports torchvision; its optimizer modules need only torch)."""
    import importlib.util
    import types

    parts = module_name.split(".")
    for i in range(1, len(parts)):
        name = ".".join(parts[:i])
        if name in sys.modules:
            continue
        parent = sys.modules.get(".".join(parts[: i - 1])) if i > 1 else None
        if i == 1:
            spec = importlib.util.find_spec(name)
            paths = list(spec.submodule_search_locations or []) if spec else []
        else:
            paths = [os.path.join(p, parts[i - 1]) for p in getattr(parent, "__path__", [])]
        if not paths:
            raise ModuleNotFoundError(f"no package {name!r}")
        stub = types.ModuleType(name)
        stub.__path__ = paths  # type: ignore[attr-defined]
        sys.modules[name] = stub
    return importlib.import_module(module_name)


def _import(spec: str, what: str, *, module_ok: bool = False, skip_init: bool = False) -> Any:
    """``MODULE:NAME`` imported from the current folder or sys.path (``MODULE`` alone too, if ``module_ok``)."""
    module_name, sep, attr = spec.partition(":")
    if not module_name or (sep and not attr) or (not sep and not module_ok):
        example = "examples.lion:lion_reference or reference.lamb" if module_ok else "examples.lion:Lion"
        raise UsageError(f"{what} must be MODULE:NAME (e.g. {example}), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = _import_skipping_init(module_name) if skip_init else importlib.import_module(module_name)
    except Exception as e:  # an ImportError, or whatever the user's module raises on import
        hint = "" if skip_init or "." not in module_name else " (--skip-init imports it without its packages' __init__)"
        raise UsageError(f"cannot import {module_name!r} for {what}: {type(e).__name__}: {e}{hint}") from None
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


def _state_spec(text: str) -> list[tuple[str, str]]:
    """``m,v`` (the same names on both sides) or ``m=exp_avg,v=exp_avg_sq`` (reference field = optimizer key)."""
    out: list[tuple[str, str]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        field, sep, key = (x.strip() for x in part.partition("="))
        if not field.isidentifier() or (sep and not key):
            raise argparse.ArgumentTypeError(
                f"expected NAME or FIELD=KEY (comma-separated, e.g. m=exp_avg,v=exp_avg_sq), got {text!r}"
            )
        out.append((field, key if sep else field))
    if not out:
        raise argparse.ArgumentTypeError(f"expected NAME or FIELD=KEY, got {text!r}")
    return out


def _strategy(parts: list[tuple[float, float] | tuple[Any]]) -> Any:
    from hypothesis import strategies as st

    drawn = [st.floats(*p) if len(p) == 2 else st.just(p[0]) for p in parts]
    return drawn[0] if len(drawn) == 1 else st.tuples(*drawn)


def _describe(parts: list[tuple[float, float] | tuple[Any]]) -> str:
    text = [f"[{p[0]:g}, {p[1]:g}]" if len(p) == 2 else repr(p[0]) for p in parts]
    return text[0] if len(text) == 1 else "(" + ", ".join(text) + ")"


def _keeps_step(build: Callable[..., Any], target: str) -> bool:
    """Whether the optimizer keeps ``state[p]["step"]`` (probed with one step on a small tensor, defaults).

    A target that cannot be built from a list of param-group dicts, or builds something without ``step()``, is a
    usage error; anything the built optimizer's step raises is left to verify to report."""
    import torch

    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    try:
        opt = build([{"params": [p]}])
    except Exception as e:
        raise UsageError(
            f"OPTIMIZER {target!r} cannot be built from a list of param groups: {type(e).__name__}: {e}"
        ) from None
    if not callable(getattr(opt, "step", None)) or not hasattr(opt, "state"):
        raise UsageError(f"OPTIMIZER {target!r} built a {type(opt).__name__}, not an optimizer (no step()/state)")
    try:
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

    build = _import(args.optimizer, "OPTIMIZER", skip_init=args.skip_init)
    reference = _import(args.reference, "REFERENCE", module_ok=True, skip_init=args.skip_init)
    if not callable(build):
        raise UsageError(f"OPTIMIZER {args.optimizer!r} is not a class or callable")
    if not (callable(getattr(reference, "init", None)) and callable(getattr(reference, "step", None))):
        raise UsageError(f"REFERENCE {args.reference!r} needs init() and step() (a module or an object)")
    specs = dict(args.hyper or [("lr", [(1e-4, 0.1)])])
    hypers = {name: _strategy(parts) for name, parts in specs.items()}
    state = dict(pair for spec in args.state or [] for pair in spec)  # reference field -> optimizer key
    compare_step = not args.no_step and _keeps_step(build, args.optimizer)
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
    shown = [f if k == f else f"{f}={k}" for f, k in state.items()]
    print(f"verifying {args.optimizer} against {args.reference}: state {shown}{step_text}; {described}")
    settings.load_profile("holocron-optim verify")
    try:
        verify(
            build,
            reference,
            hyperparameters=st.fixed_dictionaries(hypers),
            state=state,
            max_steps=args.max_steps,
            compare_step=None if compare_step else False,
            check_grads=not args.no_grad_check,
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
    p.add_argument(
        "--function",
        choices=("rosen", "beale", "bowl", "quadratic"),
        default="rosen",
        help="default: rosen (the functions: holocron_torch.study.FUNCTIONS)",
    )
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
    p.add_argument(
        "--state",
        action="append",
        type=_state_spec,
        metavar="NAMES",
        help="state buffers to compare: m,v (the same names on both sides) or m=exp_avg,v=exp_avg_sq (reference "
        "field=optimizer state key); a key the optimizer lacks fails with the keys it has",
    )
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
    p.add_argument(
        "--no-grad-check",
        action="store_true",
        help="let the optimizer change or free p.grad (e.g. coupled weight decay added into it in place)",
    )
    p.add_argument(
        "--skip-init",
        action="store_true",
        help="import MODULE without running its packages' __init__.py (e.g. timm.optim.lamb:Lamb, whose package "
        "imports torchvision)",
    )
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
