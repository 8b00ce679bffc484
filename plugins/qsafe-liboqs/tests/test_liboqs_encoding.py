"""Key encodings: RFC 9909 for SLH-DSA (checked against another implementation's output), the documented
layouts for Falcon and the composites, and agreement with what qsafe names for a missing plugin."""

from __future__ import annotations

import pytest
from qsafe_liboqs.dual import MLDSA65_SLHDSA_SHA2_128S, MLDSA87_SLHDSA_SHA2_256S
from qsafe_liboqs.schemes import FALCON_512, FALCON_1024, SCHEMES, SLH_DSA

from qsafe import keys, signers
from qsafe.errors import KeyFileError

# RustCrypto/signatures slh-dsa/tests/pkcs8.rs (see vectors/PROVENANCE.md): SLH-DSA-SHA2-128s secret key and the
# PKCS#8 / SPKI that implementation writes for it.
RUSTCRYPTO_SK = bytes.fromhex("A0FC7756572F3008F544399C25C9E087C28287AB54ADB1601FCACF85C2995A54"
                              "404F690CD9A145512F61F2E4DE9292DA71371E754B3C2A79F2471E14608A2E34")
RUSTCRYPTO_PKCS8 = b"""-----BEGIN PRIVATE KEY-----
MFICAQAwCwYJYIZIAWUDBAMUBECg/HdWVy8wCPVEOZwlyeCHwoKHq1StsWAfys+F
wplaVEBPaQzZoUVRL2Hy5N6SktpxNx51SzwqefJHHhRgii40
-----END PRIVATE KEY-----
"""
RUSTCRYPTO_SPKI = b"""-----BEGIN PUBLIC KEY-----
MDAwCwYJYIZIAWUDBAMUAyEAQE9pDNmhRVEvYfLk3pKS2nE3HnVLPCp58kceFGCK
LjQ=
-----END PUBLIC KEY-----
"""


def test_rfc9909_encoding_matches_another_implementation() -> None:
    private = keys.private_key_from_pem(RUSTCRYPTO_PKCS8)
    assert private.algorithm == "slh-dsa-sha2-128s"
    assert private.to_pem() == RUSTCRYPTO_PKCS8  # byte for byte
    assert private.public_key().to_pem() == RUSTCRYPTO_SPKI
    assert keys.public_key_from_pem(RUSTCRYPTO_SPKI) == private.public_key()
    assert signers.decode_pkcs8(keys.private_key_from_pem(RUSTCRYPTO_PKCS8)._key.pkcs8_der(),
                                "2.16.840.1.101.3.4.3.20") == RUSTCRYPTO_SK


def test_every_scheme_is_what_qsafe_names_for_a_missing_plugin() -> None:
    """qsafe.signers.KNOWN_PLUGIN_ALGORITHMS (used for exit 5 without the plugin) agrees with the plugin."""
    mine = {**{s.name: s for s in SCHEMES.values()}, MLDSA65_SLHDSA_SHA2_128S.name: MLDSA65_SLHDSA_SHA2_128S,
            MLDSA87_SLHDSA_SHA2_256S.name: MLDSA87_SLHDSA_SHA2_256S}
    known = {k.name: k for k in signers.KNOWN_PLUGIN_ALGORITHMS}
    assert set(known) == set(mine)
    for name, scheme in mine.items():
        assert (scheme.oid, scheme.key_details) == (known[name].oid, known[name].key_details)
        assert known[name].plugin == "qsafe-liboqs"
    assert [f"2.16.840.1.101.3.4.3.{20 + i}" for i in range(12)] == [s.oid for s in SLH_DSA.values()]


@pytest.mark.parametrize("name", ["slh-dsa-sha2-128f", "slh-dsa-shake-256f", "falcon-512", "falcon-1024",
                                  "ml-dsa-65-slh-dsa-sha2-128s"])
def test_pem_round_trip_and_key_id(name: str) -> None:
    private = keys.generate(name)
    again = keys.private_key_from_pem(private.to_pem())
    assert again == private and again.algorithm == name
    public = keys.public_key_from_pem(private.public_key().to_pem())
    assert public == private.public_key() and public.post_quantum
    assert public.key_id.startswith("sha256:") and public.key_details.startswith("QSAFE_")


@pytest.mark.parametrize("scheme", [SLH_DSA["slh-dsa-sha2-128f"], FALCON_512, FALCON_1024], ids=lambda s: s.name)
def test_wrong_lengths_and_oids_are_key_errors(scheme: object) -> None:
    key = scheme.generate()  # type: ignore[attr-defined]
    spki, pkcs8 = key.public().spki_der(), key.pkcs8_der()
    raw_public = signers.decode_spki(spki, scheme.oid)  # type: ignore[attr-defined]
    raw_private = signers.decode_pkcs8(pkcs8, scheme.oid)  # type: ignore[attr-defined]
    with pytest.raises(KeyFileError):
        scheme.public_from_spki(signers.encode_spki(scheme.oid, raw_public[:-1]))  # type: ignore[attr-defined]
    with pytest.raises(KeyFileError):
        scheme.private_from_pkcs8(signers.encode_pkcs8(scheme.oid, raw_private + b"\0"))  # type: ignore[attr-defined]
    with pytest.raises(KeyFileError):
        scheme.public_from_spki(signers.encode_spki("2.16.840.1.101.3.4.3.18", raw_public))  # type: ignore[attr-defined]


def test_falcon_has_no_context_but_qsafe_separates_uses() -> None:
    key = FALCON_512.generate()
    signature = key.sign(b"m", b"use one")
    key.public().verify(signature, b"m", b"use one")
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        key.public().verify(signature, b"m", b"use two")
    with pytest.raises(InvalidSignature):
        key.public().verify(signature, b"\x00\x07use onem", b"")  # M' is not a message of its own
