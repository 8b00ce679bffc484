"""Robust-aggregation defenses, one per module behind :class:`~qsafe.federated.defenses.base.Strategy`.

``make_strategy(name, **params)`` builds one by its CLI name; :data:`DEFENSES` lists the names in the order the
docs and the matrix use.
"""

from __future__ import annotations

from typing import Any

from qsafe.errors import UsageError
from qsafe.federated.defenses.base import AggregateResult, ClientDecision, ClientUpdate, Strategy
from qsafe.federated.defenses.dp import DifferentialPrivacy, privacy_spent
from qsafe.federated.defenses.fedavg import FedAvg
from qsafe.federated.defenses.flame import Flame
from qsafe.federated.defenses.foolsgold import FoolsGold
from qsafe.federated.defenses.krum import Krum, MultiKrum
from qsafe.federated.defenses.median import Median
from qsafe.federated.defenses.norm_bound import NormBound
from qsafe.federated.defenses.trimmed_mean import TrimmedMean

__all__ = [
    "DEFENSES",
    "AggregateResult",
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
    "make_strategy",
    "privacy_spent",
]

_FACTORIES: dict[str, Any] = {
    "none": FedAvg,
    "norm-bound": NormBound,
    "krum": Krum,
    "multi-krum": MultiKrum,
    "median": Median,
    "trimmed-mean": TrimmedMean,
    "foolsgold": FoolsGold,
    "dp": DifferentialPrivacy,
    "flame": Flame,
}
DEFENSES: tuple[str, ...] = tuple(_FACTORIES)


def make_strategy(name: str, **params: Any) -> Strategy:
    """Build the defense called ``name`` (a CLI name) with keyword ``params``.

    Raises:
        UsageError: unknown name or parameter.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UsageError(f"unknown defense {name!r}; choose one of {', '.join(DEFENSES)}")
    try:
        strategy: Strategy = factory(**params)
    except TypeError as exc:
        raise UsageError(f"defense {name!r}: {exc}") from exc
    return strategy
