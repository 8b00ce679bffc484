"""SLH-DSA (FIPS 205) and Falcon (FN-DSA) as qsafe signature schemes, on liboqs.

Encodings (SubjectPublicKeyInfo / PKCS#8 v1, parameters absent, keys as raw octets):

- SLH-DSA: RFC 9909 ("Algorithm Identifiers for SLH-DSA"): ``id-slh-dsa-sha2-128s`` = 2.16.840.1.101.3.4.3.20
  through ``id-slh-dsa-shake-256f`` = .31; the public key (PK.seed || PK.root, 2n bytes) is the BIT STRING, the
  private key (SK.seed || SK.prf || PK.seed || PK.root, 4n bytes) is the PKCS#8 privateKey OCTET STRING as is.
  Signing is FIPS 205 *pure* SLH-DSA with the caller's context string, hedged (fresh ``opt_rand``).
- Falcon: no IETF OID is assigned (FN-DSA / FIPS 206 is not final). qsafe uses the Open Quantum Safe project's
  experimental OIDs, which oqs-provider also uses: Falcon-512 = 1.3.9999.3.11, Falcon-1024 = 1.3.9999.3.14;
  public key = liboqs's encoding (header byte + h) in the BIT STRING; the PKCS#8 privateKey OCTET STRING is
  liboqs's secret key followed by the public key (qsafe's own layout: a Falcon public key cannot be recomputed
  cheaply from liboqs's secret-key encoding). Falcon has no context string, so qsafe signs
  ``M' = 0x00 || len(ctx) || ctx || M`` (the FIPS 204/205 pure-mode encoding), and a signature made for one use
  never verifies for another. Expect a new encoding once FIPS 206 and its LAMPS RFC are published.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from qsafe.errors import InvalidInputError, KeyFileError
from qsafe.signers import decode_pkcs8, decode_spki, encode_pkcs8, encode_spki
from qsafe_liboqs import liboqs

__all__ = ["FALCON_512", "FALCON_1024", "SCHEMES", "SLH_DSA", "LiboqsPrivateKey", "LiboqsPublicKey", "LiboqsScheme"]


def _falcon_message(data: bytes, context: bytes) -> bytes:
    if len(context) > 255:
        raise InvalidInputError("signature context string is longer than 255 bytes")
    return b"\x00" + bytes([len(context)]) + context + data


@dataclass(frozen=True)
class LiboqsScheme:
    """One liboqs signature algorithm as a :class:`qsafe.signers.SignatureScheme`."""

    name: str
    oid: str
    key_details: str
    description: str
    oqs_name: str
    public_len: int
    secret_len: int
    native_context: bool  # FIPS 205 context string in the algorithm itself (SLH-DSA), else M' encoding (Falcon)
    pkcs8_appends_public: bool
    post_quantum: bool = True
    keygen: bool = True

    def _sig(self, secret: bytes | None = None) -> object:
        liboqs.enabled(self.oqs_name)
        return liboqs.oqs().Signature(self.oqs_name, secret)

    def generate(self) -> LiboqsPrivateKey:
        with self._sig() as sig:  # type: ignore[attr-defined]
            public = bytes(sig.generate_keypair())
            secret = bytes(sig.export_secret_key())
        return LiboqsPrivateKey(self, secret, public)

    def _public_of(self, secret: bytes) -> bytes:
        # SLH-DSA: SK = SK.seed || SK.prf || PK.seed || PK.root, PK = PK.seed || PK.root (FIPS 205, 9.1)
        return secret[len(secret) // 2:]

    def public_from_spki(self, spki: bytes) -> LiboqsPublicKey:
        raw = decode_spki(spki, self.oid)
        if len(raw) != self.public_len:
            raise KeyFileError(f"{self.name} public key must be {self.public_len} bytes, not {len(raw)}")
        return LiboqsPublicKey(self, raw)

    def private_from_pkcs8(self, pkcs8: bytes) -> LiboqsPrivateKey:
        raw = decode_pkcs8(pkcs8, self.oid)
        if self.pkcs8_appends_public:
            if len(raw) != self.secret_len + self.public_len:
                raise KeyFileError(f"{self.name} private key must be {self.secret_len + self.public_len} bytes")
            return LiboqsPrivateKey(self, raw[:self.secret_len], raw[self.secret_len:])
        if len(raw) != self.secret_len:
            raise KeyFileError(f"{self.name} private key must be {self.secret_len} bytes, not {len(raw)}")
        return LiboqsPrivateKey(self, raw, self._public_of(raw))


class LiboqsPublicKey:
    """A public key of a :class:`LiboqsScheme`."""

    def __init__(self, scheme: LiboqsScheme, raw: bytes) -> None:
        self.scheme, self.raw = scheme, bytes(raw)

    def spki_der(self) -> bytes:
        return encode_spki(self.scheme.oid, self.raw)

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        """Raise InvalidSignature unless ``signature`` is valid over ``data`` under ``context``."""
        if len(context) > 255:
            raise InvalidSignature()
        with self.scheme._sig() as sig:  # type: ignore[attr-defined]
            if self.scheme.native_context:
                ok = sig.verify_with_ctx_str(bytes(data), bytes(signature), bytes(context), self.raw)
            else:
                ok = sig.verify(_falcon_message(bytes(data), bytes(context)), bytes(signature), self.raw)
        if not ok:
            raise InvalidSignature()


class LiboqsPrivateKey:
    """A private key of a :class:`LiboqsScheme` (liboqs's secret-key encoding, with its public key)."""

    def __init__(self, scheme: LiboqsScheme, secret: bytes, public: bytes) -> None:
        self.scheme, self._secret, self._public = scheme, bytes(secret), bytes(public)

    def pkcs8_der(self) -> bytes:
        body = self._secret + self._public if self.scheme.pkcs8_appends_public else self._secret
        return encode_pkcs8(self.scheme.oid, body)

    def public(self) -> LiboqsPublicKey:
        return LiboqsPublicKey(self.scheme, self._public)

    def sign(self, data: bytes, context: bytes) -> bytes:
        """FIPS 205 pure SLH-DSA with ``context`` (hedged); Falcon over the M' encoding (see the module doc)."""
        if len(context) > 255:
            raise InvalidInputError("signature context string is longer than 255 bytes")
        with self.scheme._sig(self._secret) as sig:  # type: ignore[attr-defined]
            if self.scheme.native_context:
                return bytes(sig.sign_with_ctx_str(bytes(data), bytes(context)))
            return bytes(sig.sign(_falcon_message(bytes(data), bytes(context))))


_SLH_N = {"128": 16, "192": 24, "256": 32}
_SLH_SETS = ("sha2-128s", "sha2-128f", "sha2-192s", "sha2-192f", "sha2-256s", "sha2-256f",
             "shake-128s", "shake-128f", "shake-192s", "shake-192f", "shake-256s", "shake-256f")


def _slh_dsa(index: int, params: str) -> LiboqsScheme:
    n = _SLH_N[params.split("-")[1][:3]]
    upper = params.upper().replace("-", "_")
    return LiboqsScheme(
        name=f"slh-dsa-{params}", oid=f"2.16.840.1.101.3.4.3.{20 + index}", key_details=f"QSAFE_SLH_DSA_{upper}",
        description=f"SLH-DSA-{params.split('-')[0].upper()}-{params.split('-')[1]} "
                    "(FIPS 205, pure, context string; RFC 9909 OID; liboqs)",
        oqs_name=f"SLH_DSA_PURE_{upper}", public_len=2 * n, secret_len=4 * n, native_context=True,
        pkcs8_appends_public=False)


SLH_DSA: dict[str, LiboqsScheme] = {s.name: s for s in (_slh_dsa(i, p) for i, p in enumerate(_SLH_SETS))}
SLH_DSA_SHA2_128S, SLH_DSA_SHA2_128F, SLH_DSA_SHA2_192S, SLH_DSA_SHA2_192F, SLH_DSA_SHA2_256S, SLH_DSA_SHA2_256F, \
    SLH_DSA_SHAKE_128S, SLH_DSA_SHAKE_128F, SLH_DSA_SHAKE_192S, SLH_DSA_SHAKE_192F, SLH_DSA_SHAKE_256S, \
    SLH_DSA_SHAKE_256F = SLH_DSA.values()

FALCON_512 = LiboqsScheme(
    name="falcon-512", oid="1.3.9999.3.11", key_details="QSAFE_FALCON_512",
    description="Falcon-512 (FN-DSA draft; liboqs; OQS experimental OID 1.3.9999.3.11; context via M' encoding)",
    oqs_name="Falcon-512", public_len=897, secret_len=1281, native_context=False, pkcs8_appends_public=True)
FALCON_1024 = LiboqsScheme(
    name="falcon-1024", oid="1.3.9999.3.14", key_details="QSAFE_FALCON_1024",
    description="Falcon-1024 (FN-DSA draft; liboqs; OQS experimental OID 1.3.9999.3.14; context via M' encoding)",
    oqs_name="Falcon-1024", public_len=1793, secret_len=2305, native_context=False, pkcs8_appends_public=True)

SCHEMES: dict[str, LiboqsScheme] = {**SLH_DSA, FALCON_512.name: FALCON_512, FALCON_1024.name: FALCON_1024}
