"""Composite ML-DSA + SLH-DSA: a lattice signature and a hash-based one in ONE signature, both required.

A release signed with ``ml-dsa-65-slh-dsa-sha2-128s`` stays unforgeable while either ML-DSA (lattices) or
SLH-DSA (hash functions only: the conservative assumption) stands, and neither half can be stripped: the bundle
holds one signature, and verification requires both halves. The construction is that of
draft-ietf-lamps-pq-composite-sigs-19 (the ML-DSA + Ed25519 composites qsafe has built in), with an SLH-DSA
component in place of the traditional one::

    M'  = Prefix || Label || len(ctx) || ctx || SHA-512(M)          (Prefix = "CompositeAlgorithmSignatures2025")
    sig = ML-DSA.Sign(mldsaSK, M', ctx=Label) || SLH-DSA.Sign(slhSK, M', ctx=Label)     (pure, FIPS 204 / 205)
    pk  = mldsaPK || slhPK          sk = mldsaSeed (32 bytes) || slhSK

The draft defines no ML-DSA + SLH-DSA pair, so the Labels and OIDs are qsafe's own: the OIDs sit under the
UUID arc 2.25 (ITU-T X.667: unique without registration), listed in qsafe.signers.KNOWN_PLUGIN_ALGORITHMS so
that a qsafe without this plugin names it. Nothing outside qsafe reads these keys yet; when the LAMPS group
assigns such a composite, a new name will follow it. ML-DSA comes from cryptography (as in qsafe itself),
SLH-DSA from liboqs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa

from qsafe.errors import InvalidInputError, KeyFileError
from qsafe.signers import decode_pkcs8, decode_spki, encode_pkcs8, encode_spki
from qsafe_liboqs.schemes import SLH_DSA, LiboqsPrivateKey, LiboqsPublicKey, LiboqsScheme

__all__ = ["MLDSA65_SLHDSA_SHA2_128S", "MLDSA87_SLHDSA_SHA2_256S", "PREFIX", "DualScheme"]

PREFIX = b"CompositeAlgorithmSignatures2025"
_SEED = 32


@dataclass(frozen=True)
class DualScheme:
    """ML-DSA-x + SLH-DSA-y as one :class:`qsafe.signers.SignatureScheme`."""

    name: str
    oid: str
    key_details: str
    label: bytes
    mldsa_private: Any
    mldsa_public: Any
    mldsa_pk_len: int
    mldsa_sig_len: int
    slh: LiboqsScheme
    slh_sig_len: int
    post_quantum: bool = True
    keygen: bool = True

    @property
    def description(self) -> str:
        return (f"composite ML-DSA-{self.name.split('-')[2]} + {self.slh.description.split(' (')[0]} "
                f"(both must verify; draft-ietf-lamps-pq-composite-sigs-19 construction; qsafe OID {self.oid})")

    def message_representative(self, data: bytes, context: bytes) -> bytes:
        """M' = Prefix || Label || len(ctx) || ctx || SHA-512(M)."""
        if len(context) > 255:
            raise InvalidInputError("signature context string is longer than 255 bytes")
        return PREFIX + self.label + bytes([len(context)]) + context + hashlib.sha512(data).digest()

    def generate(self) -> DualPrivateKey:
        seed = self.mldsa_private.generate().private_bytes_raw()
        return DualPrivateKey(self, seed, self.slh.generate())

    def public_from_spki(self, spki: bytes) -> DualPublicKey:
        raw = decode_spki(spki, self.oid)
        if len(raw) != self.mldsa_pk_len + self.slh.public_len:
            raise KeyFileError(f"{self.name} public key must be {self.mldsa_pk_len + self.slh.public_len} bytes")
        try:
            ml = self.mldsa_public.from_public_bytes(raw[:self.mldsa_pk_len])
        except ValueError as exc:
            raise KeyFileError(f"invalid {self.name} public key: {exc}") from exc
        return DualPublicKey(self, ml, LiboqsPublicKey(self.slh, raw[self.mldsa_pk_len:]))

    def private_from_pkcs8(self, pkcs8: bytes) -> DualPrivateKey:
        raw = decode_pkcs8(pkcs8, self.oid)
        if len(raw) != _SEED + self.slh.secret_len:
            raise KeyFileError(f"{self.name} private key must be {_SEED + self.slh.secret_len} bytes")
        slh = self.slh.private_from_pkcs8(encode_pkcs8(self.slh.oid, raw[_SEED:]))
        return DualPrivateKey(self, raw[:_SEED], slh)


class DualPublicKey:
    def __init__(self, scheme: DualScheme, mldsa_key: Any, slh: LiboqsPublicKey) -> None:
        self.scheme, self._mldsa, self._slh = scheme, mldsa_key, slh

    def spki_der(self) -> bytes:
        return encode_spki(self.scheme.oid, bytes(self._mldsa.public_bytes_raw()) + self._slh.raw)

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        """Both halves must verify over M'; raise InvalidSignature otherwise (either half alone is refused)."""
        s = self.scheme
        if len(signature) != s.mldsa_sig_len + s.slh_sig_len or len(context) > 255:
            raise InvalidSignature()
        m_prime = s.message_representative(bytes(data), bytes(context))
        self._mldsa.verify(bytes(signature[:s.mldsa_sig_len]), m_prime, s.label)
        self._slh.verify(bytes(signature[s.mldsa_sig_len:]), m_prime, s.label)


class DualPrivateKey:
    def __init__(self, scheme: DualScheme, seed: bytes, slh: LiboqsPrivateKey) -> None:
        self.scheme, self._seed, self._slh = scheme, bytes(seed), slh
        self._mldsa = scheme.mldsa_private.from_seed_bytes(self._seed)

    def pkcs8_der(self) -> bytes:
        slh_raw = decode_pkcs8(self._slh.pkcs8_der(), self.scheme.slh.oid)
        return encode_pkcs8(self.scheme.oid, self._seed + slh_raw)

    def public(self) -> DualPublicKey:
        return DualPublicKey(self.scheme, self._mldsa.public_key(), self._slh.public())

    def sign(self, data: bytes, context: bytes) -> bytes:
        """mldsaSig || slhSig over M' (both hedged, both with ctx = Label)."""
        m_prime = self.scheme.message_representative(bytes(data), bytes(context))
        return bytes(self._mldsa.sign(m_prime, self.scheme.label)) + self._slh.sign(m_prime, self.scheme.label)


MLDSA65_SLHDSA_SHA2_128S = DualScheme(
    name="ml-dsa-65-slh-dsa-sha2-128s", oid="2.25.211432629807212156578416936559014524121",
    key_details="QSAFE_COMPOSITE_MLDSA65_SLHDSA_SHA2_128S", label=b"QSAFE-COMPSIG-MLDSA65-SLHDSA-SHA2-128s",
    mldsa_private=mldsa.MLDSA65PrivateKey, mldsa_public=mldsa.MLDSA65PublicKey, mldsa_pk_len=1952,
    mldsa_sig_len=3309, slh=SLH_DSA["slh-dsa-sha2-128s"], slh_sig_len=7856)
MLDSA87_SLHDSA_SHA2_256S = DualScheme(
    name="ml-dsa-87-slh-dsa-sha2-256s", oid="2.25.15082439324558659291678523129916960134",
    key_details="QSAFE_COMPOSITE_MLDSA87_SLHDSA_SHA2_256S", label=b"QSAFE-COMPSIG-MLDSA87-SLHDSA-SHA2-256s",
    mldsa_private=mldsa.MLDSA87PrivateKey, mldsa_public=mldsa.MLDSA87PublicKey, mldsa_pk_len=2592,
    mldsa_sig_len=4627, slh=SLH_DSA["slh-dsa-sha2-256s"], slh_sig_len=29792)
