"""Federated ``.qfl`` update: the container, its canonical-JSON header, scheme parameters, tensor layout and
packing, then the aggregator's admission (signature, digests, replay) of the update read from a file.

``aggregate`` must refuse a bad update on its own (listed with its reason) and never raise for it.
"""

from __future__ import annotations

from fuzz._common import memfile
from fuzz.harnesses._he import allowlist, public_context
from qsafe.federated.aggregation import aggregate, infer_round
from qsafe.federated.update import EncryptedUpdate


def test_one_input(data: bytes) -> None:
    context = public_context()
    with memfile(data, "update.qfl") as path:
        result = aggregate([path], context, allowlist(), 1)
        result.to_json()
        try:
            infer_round([path], context, allowlist())
        finally:
            update = EncryptedUpdate.from_bytes(data)
            update.client_key_id, update.round, update.nonce  # noqa: B018
            update.to_bytes()
