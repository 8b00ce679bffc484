"""Robust-aggregation defenses, one per module behind :class:`~qsafe.federated.defenses.base.Strategy`: a registry.

Every defense is registered in the entry-point group ``qsafe.defenses`` under its CLI name (qsafe's built-ins in
its ``pyproject.toml``, plugins in theirs); the entry point names the Strategy class. ``make_strategy(name,
**params)`` builds one; its keyword parameters are the class's ``__init__`` keywords (:func:`defense_parameters`
lists them with their defaults, and the CLI's ``--defense-param NAME.KEY=VALUE`` sets them). :data:`DEFENSES`
gives the built-ins in the order the docs and the matrix use; :func:`defense_names` adds installed plugins'.
"""

from __future__ import annotations

import inspect
from typing import Any

from qsafe.errors import UsageError
from qsafe.federated.defenses.base import AggregateResult, BlindAggregation, ClientDecision, ClientUpdate, Strategy
from qsafe.federated.defenses.dp import DifferentialPrivacy, privacy_spent
from qsafe.federated.defenses.fedavg import FedAvg
from qsafe.federated.defenses.flame import Flame
from qsafe.federated.defenses.foolsgold import FoolsGold
from qsafe.federated.defenses.krum import Krum, MultiKrum
from qsafe.federated.defenses.median import Median
from qsafe.federated.defenses.norm_bound import NormBound
from qsafe.federated.defenses.trimmed_mean import TrimmedMean
from qsafe.plugins import DEFENSES_GROUP, registry

__all__ = [
    "DEFENSES",
    "AggregateResult",
    "BlindAggregation",
    "ClientDecision",
    "ClientUpdate",
    "DifferentialPrivacy",
    "FedAvg",
    "Flame",
    "FoolsGold",
    "Krum",
    "Median",
    "MultiKrum",
    "NormBound",
    "Strategy",
    "TrimmedMean",
    "blind_defense_names",
    "defense_names",
    "defense_parameters",
    "load_defense",
    "make_strategy",
    "privacy_spent",
]

# The built-ins in the order the docs and the matrix use (each is an entry point of group qsafe.defenses).
DEFENSES: tuple[str, ...] = ("none", "norm-bound", "krum", "multi-krum", "median", "trimmed-mean", "foolsgold", "dp",
                             "flame")


def defense_names() -> list[str]:
    """Every installed defense: the built-ins in :data:`DEFENSES` order, then plugins' by name."""
    names = registry(DEFENSES_GROUP).names()
    return [n for n in DEFENSES if n in names] + sorted(n for n in names if n not in DEFENSES)


def blind_defense_names() -> list[str]:
    """The installed defenses that can run on encrypted updates (their :meth:`Strategy.blind`, built with their
    default parameters, is not None), in :func:`defense_names` order."""
    return [n for n in defense_names() if make_strategy(n).blind() is not None]


def load_defense(name: str) -> type[Strategy]:
    """The Strategy class registered as ``name``.

    Raises:
        UsageError: no defense of that name is installed, or the entry is not a Strategy class.
        MissingDependencyError: its plugin cannot be imported.
    """
    reg = registry(DEFENSES_GROUP)
    if name not in reg:
        raise UsageError(f"unknown defense {name!r}; choose one of {', '.join(defense_names())}",
                         hint="plugins add defenses through the entry-point group qsafe.defenses")
    cls = reg.load(name)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise UsageError(f"defense {name!r} is registered as {reg.get(name).target}, which is not a Strategy class")
    return cls


def defense_parameters(name: str) -> dict[str, Any]:
    """Keyword parameters of defense ``name`` and their defaults (``inspect.Parameter.empty`` when required)."""
    params = inspect.signature(load_defense(name).__init__).parameters
    return {p.name: p.default for p in params.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and not (p.default is None and p.name == "inner")}


def make_strategy(name: str, **params: Any) -> Strategy:
    """Build the defense called ``name`` (a CLI name) with keyword ``params``.

    Raises:
        UsageError: unknown name or parameter.
    """
    factory = load_defense(name)
    try:
        strategy: Strategy = factory(**params)
    except TypeError as exc:
        raise UsageError(f"defense {name!r}: {exc}") from exc
    return strategy
