"""The fixed HE context and client key the federated harnesses (and their seeds) use: fuzz/data/."""

from __future__ import annotations

from functools import cache

from fuzz._common import DATA
from qsafe.federated.context import HEContext
from qsafe.keys import PublicKey, load_public_key


@cache
def secret_context() -> HEContext:
    """The unprotected bfv-packed secret context of fuzz/data (fuzzing only: never use a stored key elsewhere)."""
    return HEContext.load(DATA / "he-secret.ctx")


@cache
def public_context() -> HEContext:
    """Its public part (what the aggregator holds)."""
    return secret_context().public()


@cache
def allowlist() -> tuple[PublicKey, ...]:
    return (load_public_key(DATA / "fl-client.pub"),)
