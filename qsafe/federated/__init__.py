"""Homomorphically encrypted federated updates with signed clients.

Roles: the key authority makes an :class:`HEContext` and keeps its secret form; clients encrypt and sign updates
with the public form (:func:`encrypt_update`); the aggregator checks and sums them with public material only
(:func:`aggregate`); the key authority decrypts the average (:func:`decrypt_aggregate`). See docs/federated.md.

This package is the production protocol: :mod:`~qsafe.federated.context`, :mod:`~qsafe.federated.update`,
:mod:`~qsafe.federated.stream` (streaming encryption), :mod:`~qsafe.federated.aggregation`,
:mod:`~qsafe.federated.stream_aggregate`, :mod:`~qsafe.federated.norm` (encrypted norms),
:mod:`~qsafe.federated.recompute`, :mod:`~qsafe.federated.audit` (the signed audit trail) and the robust-aggregation
defenses :mod:`~qsafe.federated.defenses` (``Strategy``, the ``qsafe.defenses`` registry; a Flower deployment
aggregates with them too). The backdoor simulation that exercises it is the separate package
:mod:`qsafe.federated_sim`, which this one never imports.

TenSEAL is imported only when a function here needs it.
"""

from __future__ import annotations

from typing import Any

from qsafe.federated.aggregation import (
    AggregationOutcome,
    EncryptedAggregate,
    Refusal,
    aggregate,
    decrypt_aggregate,
    infer_round,
)
from qsafe.federated.context import HEContext, is_protected
from qsafe.federated.norm import EncryptedNorm, decrypt_squared_distance, decrypt_squared_norm, encrypted_squared_norm
from qsafe.federated.recompute import verify_aggregate
from qsafe.federated.update import EncryptedUpdate, encrypt_update, verify_update

__all__ = [
    "AggregationOutcome",
    "EncryptedAggregate",
    "EncryptedNorm",
    "EncryptedUpdate",
    "HEContext",
    "Refusal",
    "aggregate",
    "decrypt_aggregate",
    "decrypt_squared_distance",
    "decrypt_squared_norm",
    "encrypt_update",
    "encrypted_squared_norm",
    "infer_round",
    "is_protected",
    "verify_aggregate",
    "verify_update",
]


def __getattr__(name: str) -> Any:
    # qsafe 0.1 called the aggregation's outcome AggregateResult, the name the defenses' Strategy result also has
    if name == "AggregateResult":
        import warnings

        warnings.warn("qsafe.federated.AggregateResult is now qsafe.federated.AggregationOutcome",
                      DeprecationWarning, stacklevel=2)
        return AggregationOutcome
    raise AttributeError(f"module 'qsafe.federated' has no attribute {name!r}")
