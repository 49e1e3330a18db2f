"""holocron_torch.optim: drop-in for ``holocron.optim``. Every rule is proven step for step against
``reference`` (see holocron_torch.testing)."""

from __future__ import annotations

from .adabelief import AdaBelief
from .adamp import AdamP
from .adan import Adan
from .ademamix import AdEMAMix
from .factory import create, weight_decay_groups
from .lamb import LAMB
from .lars import LARS
from .ralars import RaLars
from .tadam import TAdam
from .wrapper import Lookahead, Scout

__all__ = [
    "LARS",
    "LAMB",
    "RaLars",
    "TAdam",
    "AdaBelief",
    "AdamP",
    "Adan",
    "AdEMAMix",
    "Lookahead",
    "Scout",
    "create",
    "weight_decay_groups",
]
