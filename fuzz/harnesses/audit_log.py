"""The federated audit log (hash-chained canonical JSON lines, ML-DSA-signed round heads), verified with the
aggregator key of fuzz/data.
"""

from __future__ import annotations

from functools import cache

from fuzz._common import DATA, memfile
from qsafe.federated.audit import verify_audit_log
from qsafe.keys import PublicKey, load_public_key


@cache
def key() -> PublicKey:
    return load_public_key(DATA / "audit.pub")


def test_one_input(data: bytes) -> None:
    with memfile(data, "audit.jsonl") as path:
        verify_audit_log(path, key())
