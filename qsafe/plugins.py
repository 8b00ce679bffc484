"""Plugin discovery through Python entry points.

Group ``qsafe.collectors``: evidence collectors (classes implementing
:class:`qsafe.attestation.collectors.Collector`). The built-in collectors are declared in qsafe's own
``pyproject.toml`` under that group too, and are also known here so that a source checkout (not installed) works.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from qsafe.errors import MissingDependencyError, UsageError

__all__ = ["COLLECTORS_GROUP", "available_collectors", "load_collector"]

COLLECTORS_GROUP = "qsafe.collectors"


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def available_collectors() -> dict[str, str]:
    """Name -> ``module:attribute`` of every collector: built-ins, then plugins (a plugin cannot shadow one)."""
    from qsafe.attestation.collectors import BUILTIN_COLLECTORS

    found = dict(BUILTIN_COLLECTORS)
    for ep in metadata.entry_points(group=COLLECTORS_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def load_collector(name: str, **options: Any) -> Any:
    """Instantiate the collector registered as ``name``.

    Raises:
        MissingDependencyError: no collector of that name is installed, or its module cannot be imported.
        UsageError: the options do not fit the collector (e.g. ``replay`` without a path).
    """
    targets = available_collectors()
    if name not in targets:
        raise MissingDependencyError(
            f"no evidence collector named {name!r}; available: {', '.join(sorted(targets))}",
            hint="install the plugin that provides it (entry-point group qsafe.collectors)",
        )
    try:
        cls = _import(targets[name])
    except (ImportError, AttributeError) as exc:
        raise MissingDependencyError(f"collector {name!r} ({targets[name]}) cannot be loaded: {exc}") from exc
    try:
        return cls(**options)
    except TypeError as exc:
        raise UsageError(f"collector {name!r} cannot be used this way: {exc}") from exc
