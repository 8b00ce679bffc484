"""qsafe for Flower: signed, homomorphically encrypted and robust federated aggregation.

A Flower user adds one mod to the ClientApp and one wrapper around the ServerApp's strategy::

    from qsafe_flower import qsafe_mod, QsafeEncryptedAggregation, RemoteKeyAuthority
    app = ClientApp(mods=[qsafe_mod])                       # client: encrypt + sign every training reply
    strategy = QsafeEncryptedAggregation(FedAvg(), context=public_ctx, allowlist=client_keys,
                                         key_authority=RemoteKeyAuthority(...), defense="multi-krum")

Plaintext robust defenses (when updates are not encrypted): :func:`robust_strategy`.
"""

from __future__ import annotations

from qsafe_flower.audit import AuditTrail
from qsafe_flower.authority import KeyAuthority
from qsafe_flower.defenses import RobustStrategy, robust_strategy
from qsafe_flower.mod import client_material, make_qsafe_mod, prepare_update, qsafe_mod
from qsafe_flower.registry import defense_names, make_defense
from qsafe_flower.strategy import BLIND_DEFENSES, QsafeEncryptedAggregation
from qsafe_flower.transport import KeyAuthorityServer, RemoteKeyAuthority

__all__ = [
    "BLIND_DEFENSES",
    "AuditTrail",
    "KeyAuthority",
    "KeyAuthorityServer",
    "QsafeEncryptedAggregation",
    "RemoteKeyAuthority",
    "RobustStrategy",
    "client_material",
    "defense_names",
    "make_defense",
    "make_qsafe_mod",
    "prepare_update",
    "qsafe_mod",
    "robust_strategy",
]
__version__ = "0.1.0"
