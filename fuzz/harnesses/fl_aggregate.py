"""Federated aggregate (``qsafe fl decrypt``): the ``qsafe-fl-aggregate/v1`` container written by the untrusted
aggregator, its header, the wire-form ciphertexts (range-checked coefficients) and their decryption by the key
authority's secret context.
"""

from __future__ import annotations

from fuzz.harnesses._he import secret_context
from qsafe.federated.aggregation import EncryptedAggregate, decrypt_aggregate


def test_one_input(data: bytes) -> None:
    agg = EncryptedAggregate.from_bytes(data)
    agg.count, agg.to_bytes()
    decrypt_aggregate(agg, secret_context(), min_clients=1)
