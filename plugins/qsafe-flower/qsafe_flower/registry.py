"""Which defenses exist and how to make one: qsafe's defense registry, never a list kept here."""

from __future__ import annotations

from typing import Any

from qsafe.federated.defenses import Strategy

__all__ = ["defense_names", "make_defense"]


def defense_names() -> tuple[str, ...]:
    """The names of every plaintext defense qsafe knows (built-ins and plugins)."""
    from qsafe.federated import defenses

    return tuple(defenses.DEFENSES)


def make_defense(name: str, **params: Any) -> Strategy:
    """Make the defense ``name`` with ``params``.

    Raises:
        UsageError: unknown name or parameter.
    """
    from qsafe.federated.defenses import make_strategy

    return make_strategy(name, **params)
