"""Run collectors and assemble one evidence document bound to a nonce (and model and policy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qsafe.attestation.appraisal import binding_hash
from qsafe.attestation.evidence import Evidence, utcnow
from qsafe.attestation.policy import Policy
from qsafe.errors import UsageError

__all__ = ["collect"]


def collect(
    collectors: Sequence[Any],
    *,
    nonce: bytes,
    policy: Policy | None = None,
    model_digest: str | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> Evidence:
    """Collect evidence from ``collectors`` (names or instances), bound to ``nonce``.

    With ``policy`` the bound value is :func:`binding_hash` (nonce, model digest, policy digest); without it,
    the raw 32-byte nonce (challenge mode).

    Raises:
        UsageError: no collectors, or a nonce that is not 32 bytes.
        UnavailableError: a device collector's device is absent (no fake pass).
        MissingDependencyError: a named collector is not installed.
    """
    from qsafe.plugins import load_collector

    if not collectors:
        raise UsageError("name at least one evidence collector")
    if len(nonce) != 32:
        raise UsageError("the collection nonce must be 32 bytes")
    value = binding_hash(nonce, model_digest or "", policy.digest) if policy is not None else nonce
    items: list[dict[str, Any]] = []
    for entry in collectors:
        collector = load_collector(entry, **(options or {}).get(entry, {})) if isinstance(entry, str) else entry
        items += collector.collect(value)
    return Evidence(collected_at=utcnow(), nonce=value, items=items)
