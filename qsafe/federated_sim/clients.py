"""Simulated clients' ML-DSA keys, derived from the scenario seed so that key ids are reproducible.

These are simulation identities only: a seed-derived key is as secret as the seed. Real clients generate theirs
with ``qsafe keygen``.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import mldsa

from qsafe.keys import PrivateKey

__all__ = ["simulation_client_keys"]


def simulation_client_keys(seed: int, clients: int) -> list[PrivateKey]:
    """One ML-DSA-65 key per client, from ``SHA-256("qsafe-sim client key" || seed || client)``."""
    keys = []
    for client in range(clients):
        material = hashlib.sha256(f"qsafe-sim client key/{seed}/{client}".encode()).digest()
        keys.append(PrivateKey("ml-dsa-65", mldsa.MLDSA65PrivateKey.from_seed_bytes(material)))
    return keys
