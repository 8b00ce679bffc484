"""Lazy access to TenSEAL: the only place that imports it."""

from __future__ import annotations

from typing import Any

from qsafe.errors import MissingDependencyError

__all__ = ["tenseal"]


def tenseal() -> Any:
    """Import and return the ``tenseal`` module.

    Raises:
        MissingDependencyError: TenSEAL is not installed (``pip install 'qsafe[he]'``).
    """
    try:
        import tenseal as ts
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"homomorphic encryption needs TenSEAL, which is not importable: {exc}",
            hint="pip install 'qsafe[he]'",
        ) from exc
    return ts
