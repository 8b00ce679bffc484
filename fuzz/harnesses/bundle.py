"""Signature bundle (Sigstore bundle v0.3 JSON) + DSSE envelope + in-toto Statement / OMS predicate -> Manifest.

Each input is tried twice: as a whole bundle file, and as a DSSE payload (the Statement), because the payload of
a bundle is base64 that the fuzzer seldom keeps canonical; both are what ``qsafe verify`` parses.
"""

from __future__ import annotations

from qsafe.bundle import Bundle, manifest_from_statement, parse_bundle
from qsafe.manifest import Manifest


def _manifest(bundle: Bundle) -> Manifest:
    manifest = manifest_from_statement(bundle.statement())
    manifest.files()  # every per-file view the verifier builds from it
    for resource in manifest.resources:
        manifest.file_of(resource.name)
    return manifest


def test_one_input(data: bytes) -> None:
    try:
        bundle = parse_bundle(data)
        bundle.signed_bytes()
        _manifest(bundle)
    finally:
        _manifest(Bundle(payload=data, payload_type="application/vnd.in-toto+json", signature=b"", keyid=None,
                         key_hint=None, key_details=None, document={}))
