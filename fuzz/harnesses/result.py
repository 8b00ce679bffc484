"""Signed attestation results (``qsafe attest check-result``, the load gate's ``--result``): the DSSE envelope read
by the hardened JSON reader, its signatures, and the statement, verified with the appraiser key of fuzz/data.
"""

from __future__ import annotations

from functools import cache

from fuzz._common import DATA
from qsafe.attestation.result import verify_result
from qsafe.keys import PublicKey, load_public_key


@cache
def key() -> PublicKey:
    return load_public_key(DATA / "appraiser.pub")


def test_one_input(data: bytes) -> None:
    verify_result(data, [key()])
