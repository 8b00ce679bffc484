"""HE context files (``public.ctx``, unprotected ``secret.ctx``): container, header, scheme parameters, and the
TenSEAL context inside (loaded, kind and keys checked against the declared parameters).

A passphrase-protected ``secret.ctx`` is an age file: the age harness covers that layer.
"""

from __future__ import annotations

from qsafe.federated.context import HEContext


def test_one_input(data: bytes) -> None:
    context = HEContext.from_bytes(data, None)
    context.fingerprint, context.public().public_bytes()
    if context.has_secret:
        context.secret_bytes()
        context.tenseal_secret()
    else:
        context.tenseal_public()
