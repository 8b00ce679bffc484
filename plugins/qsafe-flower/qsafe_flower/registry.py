"""Which defenses exist and how to make one: qsafe's ``qsafe.defenses`` entry-point registry, never a list kept
here. A defense another plugin registers there is a Flower strategy too (``robust_strategy(name)``)."""

from __future__ import annotations

from typing import Any

from qsafe.federated.defenses import Strategy, defense_parameters, make_strategy
from qsafe.federated.defenses import defense_names as _names

__all__ = ["defense_names", "defense_parameters", "make_defense"]


def defense_names() -> tuple[str, ...]:
    """The names of every installed defense (qsafe's built-ins, then plugins')."""
    return tuple(_names())


def make_defense(name: str, **params: Any) -> Strategy:
    """Make the defense ``name`` with ``params`` (its keyword parameters: :func:`defense_parameters`).

    Raises:
        UsageError: unknown name or parameter.
        MissingDependencyError: the plugin that registered it cannot be imported.
    """
    return make_strategy(name, **params)
