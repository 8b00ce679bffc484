"""Composite ML-DSA + Ed25519 signatures, per draft-ietf-lamps-pq-composite-sigs-19 (pinned).

The draft (IETF LAMPS, revision 19, lamps-wg/draft-composite-sigs tag ``draft-ietf-lamps-pq-composite-sigs-19``)
defines::

    M'  = Prefix || Label || len(ctx) || ctx || PH(M)          PH = SHA-512 for the Ed25519 composites
    sig = ML-DSA.Sign(mldsaSK, M', ctx=Label) || Ed25519.Sign(edSK, M')

with Prefix = "CompositeAlgorithmSignatures2025", public key = mldsaPK || edPK, private key =
mldsaSeed || edSK (raw concatenations inside the SPKI BIT STRING / PKCS#8 OCTET STRING, parameters absent).
Verification requires BOTH component signatures to verify, so the ML-DSA half cannot be stripped, and the
ML-DSA half alone does not verify as a plain ML-DSA signature (its context is the composite Label).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from qsafe._crypto import der
from qsafe.errors import KeyFileError

__all__ = [
    "COMPOSITES", "DRAFT_REVISION", "MLDSA44_ED25519", "MLDSA65_ED25519", "PREFIX", "CompositeParams",
    "CompositePrivateKey", "CompositePublicKey", "CompositeScheme",
]

DRAFT_REVISION = "draft-ietf-lamps-pq-composite-sigs-19"
PREFIX = b"CompositeAlgorithmSignatures2025"

_ED25519_PK, _ED25519_SK, _ED25519_SIG, _SEED = 32, 32, 64, 32


@dataclass(frozen=True)
class CompositeParams:
    """One composite algorithm of the draft: names, OID, Label and ML-DSA component sizes."""

    name: str  # qsafe's algorithm name
    draft_name: str
    oid: str
    label: bytes
    mldsa_private: type[mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey]
    mldsa_public: type[mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey]
    mldsa_pk_len: int
    mldsa_sig_len: int

    def message_representative(self, data: bytes, context: bytes) -> bytes:
        """M' = Prefix || Label || len(ctx) || ctx || SHA-512(M)."""
        if len(context) > 255:
            raise ValueError("composite context is longer than 255 bytes")
        return PREFIX + self.label + bytes([len(context)]) + context + hashlib.sha512(data).digest()


COMPOSITES: dict[str, CompositeParams] = {
    p.name: p
    for p in (
        CompositeParams("ml-dsa-65-ed25519", "id-MLDSA65-Ed25519-SHA512", "1.3.6.1.5.5.7.6.48",
                        b"COMPSIG-MLDSA65-Ed25519-SHA512", mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey,
                        1952, 3309),
        CompositeParams("ml-dsa-44-ed25519", "id-MLDSA44-Ed25519-SHA512", "1.3.6.1.5.5.7.6.39",
                        b"COMPSIG-MLDSA44-Ed25519-SHA512", mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey,
                        1312, 2420),
    )
}


class CompositePublicKey:
    """A composite verification key; ``verify`` raises InvalidSignature unless both halves verify."""

    def __init__(self, params: CompositeParams, raw: bytes) -> None:
        if len(raw) != params.mldsa_pk_len + _ED25519_PK:
            raise KeyFileError(f"{params.draft_name} public key must be {params.mldsa_pk_len + _ED25519_PK} bytes")
        self.params = params
        try:
            self._mldsa = params.mldsa_public.from_public_bytes(raw[:params.mldsa_pk_len])
            self._ed = ed25519.Ed25519PublicKey.from_public_bytes(raw[params.mldsa_pk_len:])
        except ValueError as exc:
            raise KeyFileError(f"invalid {params.draft_name} public key: {exc}") from exc
        self.raw = raw

    @classmethod
    def from_spki(cls, spki: bytes, params: CompositeParams) -> CompositePublicKey:
        return cls(params, der.decode_spki(spki, params.oid))

    def spki_der(self) -> bytes:
        return der.encode_spki(self.params.oid, self.raw)

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        """Verify both component signatures over M'; raise InvalidSignature if either fails."""
        p = self.params
        if len(signature) != p.mldsa_sig_len + _ED25519_SIG or len(context) > 255:
            raise InvalidSignature()
        m_prime = p.message_representative(data, context)
        self._mldsa.verify(signature[:p.mldsa_sig_len], m_prime, p.label)
        self._ed.verify(signature[p.mldsa_sig_len:], m_prime)


class CompositePrivateKey:
    """A composite signing key: ML-DSA seed and Ed25519 private key."""

    def __init__(self, params: CompositeParams, raw: bytes) -> None:
        if len(raw) != _SEED + _ED25519_SK:
            raise KeyFileError(f"{params.draft_name} private key must be {_SEED + _ED25519_SK} bytes")
        self.params = params
        self._mldsa = params.mldsa_private.from_seed_bytes(raw[:_SEED])
        self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(raw[_SEED:])
        self.raw = raw

    @classmethod
    def generate(cls, params: CompositeParams) -> CompositePrivateKey:
        """Fresh key: both components from the OS CSPRNG (the draft's KeyGen)."""
        seed = params.mldsa_private.generate().private_bytes_raw()
        return cls(params, seed + ed25519.Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_pkcs8(cls, pkcs8: bytes, params: CompositeParams) -> CompositePrivateKey:
        return cls(params, der.decode_pkcs8(pkcs8, params.oid))

    def pkcs8_der(self) -> bytes:
        return der.encode_pkcs8(self.params.oid, self.raw)

    def public(self) -> CompositePublicKey:
        raw = self._mldsa.public_key().public_bytes_raw() + self._ed.public_key().public_bytes_raw()
        return CompositePublicKey(self.params, raw)

    def sign(self, data: bytes, context: bytes) -> bytes:
        """mldsaSig || edSig over M' (hedged ML-DSA with ctx = Label; deterministic Ed25519)."""
        p = self.params
        m_prime = p.message_representative(data, context)
        return bytes(self._mldsa.sign(m_prime, p.label)) + bytes(self._ed.sign(m_prime))


class CompositeScheme:
    """A composite as a :class:`qsafe.signers.SignatureScheme` (registered in qsafe's ``qsafe.signers``)."""

    post_quantum = True
    keygen = True

    def __init__(self, params: CompositeParams, key_details: str) -> None:
        self.params, self.name, self.oid, self.key_details = params, params.name, params.oid, key_details
        self.description = f"{params.draft_name} ({params.oid}, {DRAFT_REVISION})"

    def generate(self) -> CompositePrivateKey:
        return CompositePrivateKey.generate(self.params)

    def public_from_spki(self, spki: bytes) -> CompositePublicKey:
        return CompositePublicKey.from_spki(spki, self.params)

    def private_from_pkcs8(self, pkcs8: bytes) -> CompositePrivateKey:
        return CompositePrivateKey.from_pkcs8(pkcs8, self.params)


MLDSA65_ED25519 = CompositeScheme(COMPOSITES["ml-dsa-65-ed25519"], "QSAFE_COMPSIG_MLDSA65_ED25519_SHA512_DRAFT19")
MLDSA44_ED25519 = CompositeScheme(COMPOSITES["ml-dsa-44-ed25519"], "QSAFE_COMPSIG_MLDSA44_ED25519_SHA512_DRAFT19")
