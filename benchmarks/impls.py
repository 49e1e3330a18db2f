"""What the benchmark measures: parameter sets, implementations (ours, peers, AdamW), byte floors.

Nothing here times anything; ``benchmarks.worker`` builds the optimizers named here inside its own process.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from reference import BASE_RULES

BYTES = 4  # every benchmark runs in float32

# ---- parameter sets ----------------------------------------------------------------------------------------


def resnet50_shapes() -> list[tuple[int, ...]]:
    """The 161 parameter shapes of ResNet-50 (He et al., 2016; torchvision's layout), written out by hand."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]  # stem conv + BN (weight, bias)
    inplanes = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        out = width * 4  # bottleneck expansion 4
        for b in range(blocks):
            shapes += [(width, inplanes, 1, 1), (width,), (width,)]  # 1x1 reduce + BN
            shapes += [(width, width, 3, 3), (width,), (width,)]  # 3x3 + BN
            shapes += [(out, width, 1, 1), (out,), (out,)]  # 1x1 expand + BN
            if b == 0:  # projection shortcut of the first block of each stage
                shapes += [(out, inplanes, 1, 1), (out,), (out,)]
            inplanes = out
    return shapes + [(1000, 2048), (1000,)]  # classifier


def small_shapes() -> list[tuple[int, ...]]:
    """~1M parameters in 200 small tensors: 50 3x3 convs, 50 linears, 100 vectors."""
    shapes: list[tuple[int, ...]] = []
    for _ in range(50):
        shapes += [(32, 32, 3, 3), (96,), (112, 96), (96,)]
    return shapes


def flat_shapes(numel: int, tensors: int) -> list[tuple[int, ...]]:
    """``tensors`` 1-d tensors that hold ``numel`` elements between them (sizes differ by at most one)."""
    base, extra = divmod(numel, tensors)
    return [(base + (i < extra),) for i in range(tensors)]


SIZES: dict[str, tuple[str, Callable[[], list[tuple[int, ...]]]]] = {
    "resnet50": ("ResNet-50", resnet50_shapes),
    "small": ("small 1M", small_shapes),
}


def numel(shapes: list[tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes)


# ---- byte floors -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    streams: int  # full passes over a parameter-sized float32 array (a read or a write each)
    why: str


#: the fewest parameter-sized memory streams any implementation of the rule needs per step
FLOORS: dict[str, Floor] = {
    "adamw": Floor(7, "θ r+w, g r, m r+w, v r+w: one fused pass"),
    "lars": Floor(7, "pass 1 reads θ, g (‖θ‖, ‖g‖); pass 2: θ r+w, g r, v r+w"),
    "lamb": Floor(10, "pass 1: θ r, g r, m r+w, v r+w (‖θ‖, ‖u‖); pass 2: θ r+w, m r, v r"),
    "ralars": Floor(10, "as LAMB (the rectification is a per-tensor scalar)"),
    "tadam": Floor(10, "pass 1: g r, m r, v r+w (w_t needs Σ over m_{t-1}); pass 2: θ r+w, g r, m r+w, v r"),
    "adabelief": Floor(7, "θ r+w, g r, m r+w, s r+w: one fused pass"),
    "adamp": Floor(10, "pass 1: θ r, g r, m r+w, v r+w (cosines, projections); pass 2: θ r+w, m r, v r"),
    "adan": Floor(11, "θ r+w, g r, m r+w, v r+w, n r+w, g_prev r+w: one fused pass"),
    "ademamix": Floor(9, "θ r+w, g r, m1 r+w, m2 r+w, ν r+w: one fused pass"),
}

# ---- implementations ---------------------------------------------------------------------------------------

#: the hyperparameters every implementation of a rule gets (decay on, so that its code path is timed too)
COMMON: dict[str, dict[str, Any]] = {
    "adamw": {"lr": 1e-3, "weight_decay": 1e-2},
    "lars": {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-2},
    **{r: {"lr": 1e-3, "weight_decay": 1e-2} for r in BASE_RULES if r != "lars"},
}


@dataclass(frozen=True)
class Impl:
    key: str  # unique within a rule: "ours", "ours-foreach", "holocron", ...
    label: str
    library: str  # "ours", "torch", or the peer's distribution name (for its version)
    build: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]
    kwargs: dict[str, Any] = field(default_factory=dict)  # what differs from COMMON, for the report
    warmup_extra: int = 0  # more warm-up steps (torch.compile needs them)


def import_skipping_init(package: str, module: str) -> types.ModuleType:
    """Import ``module`` of ``package`` without running ``package/__init__.py`` (and ``__init__`` of any
    package between them): each is registered as an empty package over its installed folder first.

    holocron's and timm's top-level ``__init__`` import torchvision (models, transforms), which this torch
    build cannot load; their optimizers need only torch.
    """
    if package in sys.modules:  # already imported, or already stubbed by an earlier call
        return importlib.import_module(module)
    spec = importlib.util.find_spec(package)  # finding a top-level package does not execute it
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"{package} is not installed")
    parts = module.split(".")
    path = list(spec.submodule_search_locations)
    for i in range(1, len(parts)):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.__path__ = path  # type: ignore[attr-defined]
            sys.modules[name] = stub
        path = [p + "/" + parts[i] for p in path]
    return importlib.import_module(module)


def _peer(module: str, cls: str, package: str | None, eager: bool = False) -> Callable[..., torch.optim.Optimizer]:
    def make(params: list[torch.nn.Parameter], **kw: Any) -> torch.optim.Optimizer:
        mod = import_skipping_init(package, module) if package else importlib.import_module(module)
        if eager:  # heavyball: run its step uncompiled
            utils = importlib.import_module(f"{module}.utils")
            utils.compile_mode = utils.compile_mode_recommended_to_none = None
        return getattr(mod, cls)(params, **kw)

    return make


# (library, label, module, class, package whose __init__ is skipped, kwargs beyond COMMON, extra warm-up)
_PEERS: dict[str, list[tuple[str, str, str, str, str | None, dict[str, Any], int]]] = {
    "lars": [
        ("pylocron", "holocron LARS", "holocron.optim", "LARS", "holocron", {}, 0),
        ("pytorch_optimizer", "pytorch_optimizer LARS", "pytorch_optimizer", "LARS", None, {}, 0),
        ("timm", "timm Lars", "timm.optim.lars", "Lars", "timm", {}, 0),
    ],
    "lamb": [
        ("pylocron", "holocron LAMB", "holocron.optim", "LAMB", "holocron", {}, 0),
        ("pytorch_optimizer", "pytorch_optimizer Lamb", "pytorch_optimizer", "Lamb", None, {}, 0),
        # timm clips the global grad norm to 1 by default: a rule of its own, and an extra pass
        ("timm", "timm Lamb", "timm.optim.lamb", "Lamb", "timm", {"max_grad_norm": None}, 0),
    ],
    "ralars": [
        ("pylocron", "holocron RaLars", "holocron.optim", "RaLars", "holocron", {}, 0),
        # RAdam's rectification inside LAMB: the closest peer rule (RaLamb)
        (
            "pytorch_optimizer",
            "pytorch_optimizer Lamb(rectify)",
            "pytorch_optimizer",
            "Lamb",
            None,
            {"rectify": True},
            0,
        ),
    ],
    "tadam": [
        ("pylocron", "holocron TAdam", "holocron.optim", "TAdam", "holocron", {}, 0),
    ],
    "adabelief": [
        ("pylocron", "holocron AdaBelief", "holocron.optim", "AdaBelief", "holocron", {}, 0),
        (
            "pytorch_optimizer",
            "pytorch_optimizer AdaBelief",
            "pytorch_optimizer",
            "AdaBelief",
            None,
            {"weight_decouple": False},
            0,
        ),
        # timm rectifies by default (RAdam-style): off, for the plain rule
        ("timm", "timm AdaBelief", "timm.optim.adabelief", "AdaBelief", "timm", {"rectify": False}, 0),
    ],
    "adamp": [
        ("pylocron", "holocron AdamP", "holocron.optim", "AdamP", "holocron", {}, 0),
        ("pytorch_optimizer", "pytorch_optimizer AdamP", "pytorch_optimizer", "AdamP", None, {}, 0),
        ("timm", "timm AdamP", "timm.optim.adamp", "AdamP", "timm", {}, 0),
    ],
    "adan": [
        ("pylocron", "holocron Adan", "holocron.optim", "Adan", "holocron", {}, 0),
        ("pytorch_optimizer", "pytorch_optimizer Adan", "pytorch_optimizer", "Adan", None, {}, 0),
        ("timm", "timm Adan", "timm.optim.adan", "Adan", "timm", {}, 0),
    ],
    "ademamix": [
        ("pylocron", "holocron AdEMAMix", "holocron.optim", "AdEMAMix", "holocron", {}, 0),
        ("pytorch_optimizer", "pytorch_optimizer AdEMAMix", "pytorch_optimizer", "AdEMAMix", None, {}, 0),
        # heavyball compiles its step with torch.compile (its default): the first steps compile
        ("heavyball", "heavyball AdEMAMix", "heavyball", "AdEMAMix", None, {"alpha": 5.0}, 2),
    ],
}

PEER_LIBRARIES = ("pylocron", "pytorch_optimizer", "timm", "heavyball")


def _ours(rule: str, foreach: bool | None, fused: bool | None = None) -> Callable[..., torch.optim.Optimizer]:
    def make(params: list[torch.nn.Parameter], **kw: Any) -> torch.optim.Optimizer:
        from holocron_torch import optim

        return getattr(optim, BASE_RULES[rule].cls)(params, foreach=foreach, fused=fused, **kw)

    return make


def _adamw(**flags: Any) -> Callable[..., torch.optim.Optimizer]:
    def make(params: list[torch.nn.Parameter], **kw: Any) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, **kw, **flags)

    return make


def _bind(make: Callable[..., torch.optim.Optimizer], kw: dict[str, Any]) -> Callable[..., torch.optim.Optimizer]:
    return lambda params: make(params, **kw)


ADAMW_FUSED = "adamw-fused"


def implementations(rule: str, *, heavyball_eager: bool = False) -> list[Impl]:
    """Everything timed for one rule: ours (default path and foreach), the peers, AdamW fused as yardstick.

    ``rule == "adamw"`` gives torch.optim.AdamW's three paths instead.
    """
    common = COMMON[rule]
    if rule == "adamw":
        return [
            Impl(ADAMW_FUSED, "AdamW fused", "torch", _bind(_adamw(fused=True), common), {"fused": True}),
            Impl("adamw-foreach", "AdamW foreach", "torch", _bind(_adamw(foreach=True), common), {"foreach": True}),
            Impl("adamw-loop", "AdamW for-loop", "torch", _bind(_adamw(foreach=False), common), {"foreach": False}),
        ]
    out = [
        Impl("ours", "ours (default path)", "ours", _bind(_ours(rule, None), common)),
        Impl("ours-foreach", "ours foreach=True", "ours", _bind(_ours(rule, True), common), {"foreach": True}),
        Impl("ours-fused", "ours fused=True", "ours", _bind(_ours(rule, None, True), common), {"fused": True}),
    ]
    for library, label, module, cls, package, kw, extra in _PEERS[rule]:
        eager = library == "heavyball" and heavyball_eager
        if eager:
            label, extra = label + " (eager)", 0
        make = _peer(module, cls, package, eager)
        out.append(Impl(library, label, library, _bind(make, {**common, **kw}), kw, extra))
    adamw = COMMON["adamw"]
    out.append(Impl(ADAMW_FUSED, "AdamW fused", "torch", _bind(_adamw(fused=True), adamw), {"fused": True}))
    return out


def peer_label(library: str) -> str:
    return {"pylocron": "holocron", "pytorch_optimizer": "pytorch_optimizer", "timm": "timm"}.get(library, library)


def version(library: str) -> str:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
