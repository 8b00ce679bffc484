"""age v1: armor, header (stanzas, MAC), recipient stanzas (X25519, ML-KEM-768+X25519, scrypt) and the STREAM
payload, through :func:`qsafe._age._core.decrypt_to` (the parallel pipeline) and the sequential reader.

The identities are those of the CCTV vectors the seeds come from, so a mutated payload is authenticated and
decrypted for real. scrypt work is capped at 2**10 (the vectors' factor): age's own cap (2**22, 4 GiB) is a
documented cost of passphrase files, not a parser bound.
"""

from __future__ import annotations

import io
from functools import cache

from fuzz._common import ROOT
from qsafe._age._core import decrypt_to, read_age
from qsafe._age._keys import parse_identity
from qsafe._age._recipients import ScryptIdentity

_VECTORS = ROOT / "tests" / "vectors" / "age"
MAX_WORK_FACTOR = 10


@cache
def identities() -> tuple[object, ...]:
    """Every identity and passphrase named by a CCTV vector (read once)."""
    keys: set[str] = set()
    passphrases: set[str] = set()
    for path in sorted(_VECTORS.iterdir()):
        head = path.read_bytes().split(b"\n\n", 1)[0].decode("utf-8", "replace")
        for line in head.splitlines():
            field, _, value = line.partition(": ")
            if field == "identity":
                keys.add(value)
            elif field == "passphrase":
                passphrases.add(value)
    return (*(parse_identity(k) for k in sorted(keys)),
            *(ScryptIdentity(p.encode(), MAX_WORK_FACTOR) for p in sorted(passphrases)))


def test_one_input(data: bytes) -> None:
    out = bytearray()
    try:
        decrypt_to(io.BytesIO(data), identities(), out.extend)
    finally:
        plain = bytearray()
        for chunk in read_age(io.BytesIO(data), identities()):
            plain += chunk
