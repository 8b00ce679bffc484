"""The signature file: a Sigstore bundle v0.3 JSON holding a DSSE envelope over an in-toto Statement v1 whose
predicate is OMS v1.0 (``https://model_signing/signature/v1.0``), the layout model-signing 1.1.1 writes.

What qsafe adds, only where model-signing and the OMS v1.0 schemas tolerate extra data:

- ``verificationMaterial.publicKey.keyDetails``: the signing algorithm (:attr:`qsafe.keys.PublicKey.key_details`:
  Sigstore's PublicKeyDetails names, e.g. ``ML_DSA_65``; revision-pinned ``QSAFE_COMPSIG_…`` for composites).
  model-signing's reader drops this key. ``publicKey.hint`` stays model-signing's hex SHA-256 of the PEM key.
- ``dsseEnvelope.signatures[0].keyid``: the qsafe key id (``sha256:`` + SHA-256 of the DER SPKI).
- ``resources[i].annotations["qsafe.safetensors.v1"]`` on the (first) resource of each ``.safetensors`` file:
  its header digest and tensor digests. Resource descriptors allow extra properties in the OMS schema, and
  model-signing reads only ``name``/``algorithm``/``digest``. They are inside the signed payload.

Three kinds of verification material are read (:attr:`Bundle.kind`):

- ``key``: ``publicKey`` (``hint``, ``keyDetails``, and ``rawBytes`` as model-signing 0.3-1.0 wrote it: the PEM
  public key). None of these is signed; they only select which of the *given* trusted keys to try.
- ``certificate``: ``x509CertificateChain`` (leaf first, then intermediates), what ``model_signing sign
  certificate`` and ``qsafe sign --certificate`` write; no transparency log. Checked against given roots.
- ``sigstore``: a keyless bundle (``certificate`` or ``x509CertificateChain`` plus transparency-log entries),
  verified by the ``sigstore`` library against a Sigstore trust root.

Parsing never trusts the file: sizes are capped, base64 is strict, every field is type-checked, and resource
names that are absolute or contain ``..`` are refused (:class:`~qsafe.errors.FormatError`). The log entries and
timestamps of keyless bundles are parsed by the ``sigstore`` library at verification time.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsafe import _json as _hardened_json
from qsafe import _limits
from qsafe._dsse import pae
from qsafe._files import read_regular
from qsafe._labels import (
    DSSE_PAYLOAD_TYPE,
    IN_TOTO_STATEMENT_TYPE,
    MLDSA_CONTEXT_MODEL_BUNDLE,
    MLDSA_CONTEXT_SIGSTORE_DSSE,
    OMS_PREDICATE_TYPE,
    SAFETENSORS_ANNOTATION_KEY,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from qsafe._statement import manifest_from_statement
from qsafe.errors import FormatError
from qsafe.manifest import Manifest, SafetensorsDigests

__all__ = [
    "DEFAULT_SIGNATURE_NAME",
    "MAX_BUNDLE_BYTES",
    "Bundle",
    "build_bundle",
    "default_signature_path",
    "dsse_signing_context",
    "dsse_verification_contexts",
    "manifest_from_statement",
    "parse_bundle",
    "read_bundle",
    "statement_bytes",
]

MAX_BUNDLE_BYTES = _limits.BUNDLE_MAX_BYTES
DEFAULT_SIGNATURE_NAME = "model.sig"


def default_signature_path(model: str | Path) -> Path:
    """``model.sig`` inside a model directory, or beside a single-file model (model-signing's default name)."""
    p = Path(model)
    return p / DEFAULT_SIGNATURE_NAME if p.is_dir() else p.parent / DEFAULT_SIGNATURE_NAME
_HEX = re.compile(r"[0-9a-f]+")  # used with fullmatch: `$` would also match before a final newline
# Sigstore bundle media types the sigstore library reads (keyless bundles); key and certificate bundles are v0.3.
_KEYLESS_MEDIA_TYPES = frozenset({
    SIGSTORE_BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
})
KIND_KEY, KIND_CERTIFICATE, KIND_SIGSTORE = "key", "certificate", "sigstore"

def _plain_mldsa(algorithm: str) -> bool:
    return algorithm.startswith("ml-dsa-") and "-ed25519" not in algorithm


def dsse_signing_context(algorithm: str) -> bytes:
    """The ML-DSA context string qsafe signs a model bundle's DSSE PAE with: empty for plain ML-DSA
    (Sigstore's convention, so other Sigstore verifiers accept the bundle), qsafe's label for composites (no
    Sigstore name exists for them); ECDSA has no context."""
    return MLDSA_CONTEXT_SIGSTORE_DSSE if _plain_mldsa(algorithm) else MLDSA_CONTEXT_MODEL_BUNDLE


def dsse_verification_contexts(algorithm: str) -> tuple[bytes, ...]:
    """The contexts a model bundle signature of ``algorithm`` may use: the signing one, and for plain ML-DSA
    also qsafe 0.1's ``qsafe/v1 model-bundle dsse``."""
    if _plain_mldsa(algorithm):
        return (MLDSA_CONTEXT_SIGSTORE_DSSE, MLDSA_CONTEXT_MODEL_BUNDLE)
    return (MLDSA_CONTEXT_MODEL_BUNDLE,)


@dataclass(frozen=True)
class Bundle:
    """A parsed (not yet verified) signature bundle."""

    payload: bytes
    payload_type: str
    signature: bytes
    keyid: str | None
    key_hint: str | None
    key_details: str | None
    document: dict[str, Any]
    kind: str = KIND_KEY
    raw_public_key: bytes | None = None  # publicKey.rawBytes: an unsigned copy of the signer's key (PEM or DER)
    certificates: tuple[bytes, ...] = ()  # DER, leaf first (certificate and keyless bundles)
    raw: bytes = b""  # the file's bytes, as read (keyless bundles are handed to the sigstore library as they are)

    def signed_bytes(self) -> bytes:
        """PAE(payloadType, payload): what the signature covers."""
        return pae(self.payload_type, self.payload)

    def statement(self) -> dict[str, Any]:
        """The decoded in-toto statement (call only after the signature verified).

        Raises:
            FormatError: the payload is not a JSON object.
        """
        doc = _json(self.payload, "DSSE payload")
        if not isinstance(doc, dict):
            raise FormatError("DSSE payload is not a JSON object")
        return doc


def _json(data: bytes, what: str) -> Any:
    # duplicate keys, NaN, huge numbers, deep nesting and lone surrogates are all refused (qsafe._json)
    return _hardened_json.loads(data, what, max_bytes=MAX_BUNDLE_BYTES)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise FormatError(f"bundle {what} must be a non-empty base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"bundle {what} is not valid base64") from None
    # Canonical form only: otherwise unused bits of the last character could change without changing the bytes.
    if base64.b64encode(raw).decode("ascii") != value:
        raise FormatError(f"bundle {what} is not canonical base64")
    return raw


def _obj(value: Any, what: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"bundle {what} must be a JSON object")
    if allowed is not None and not set(value) <= allowed:
        raise FormatError(f"bundle {what} has unknown field(s) {', '.join(sorted(set(value) - allowed))}")
    return value


# Every field a bundle may carry at these levels. Unknown fields are refused, so that no byte of the file can
# change without verification noticing (the OMS bundle and envelope schemas are closed the same way). Inside
# keyless material (log entries, timestamps) the sigstore library is the parser.
_TOP = frozenset({"mediaType", "verificationMaterial", "dsseEnvelope"})
_MATERIAL = frozenset({"publicKey", "x509CertificateChain", "certificate", "tlogEntries",
                       "timestampVerificationData"})
_PUBLIC_KEY = frozenset({"hint", "keyDetails", "rawBytes"})
_ENVELOPE = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE = frozenset({"sig", "keyid"})


def _certificate_list(material: dict[str, Any]) -> tuple[bytes, ...]:
    if "certificate" in material:
        cert = _obj(material["certificate"], "verificationMaterial.certificate", frozenset({"rawBytes"}))
        return (_b64(cert.get("rawBytes"), "certificate rawBytes"),)
    chain = _obj(material["x509CertificateChain"], "x509CertificateChain", frozenset({"certificates"}))
    certs = chain.get("certificates")
    if not isinstance(certs, list) or not certs:
        raise FormatError("bundle x509CertificateChain.certificates must be a non-empty list")
    return tuple(_b64(_obj(c, "certificate", frozenset({"rawBytes"})).get("rawBytes"), "certificate rawBytes")
                 for c in certs)


def _material(material: dict[str, Any], media_type: Any) -> tuple[str, tuple[bytes, ...]]:
    """(kind, certificates) of the verification material; checks the combination of fields."""
    present = [k for k in ("publicKey", "x509CertificateChain", "certificate") if k in material]
    if len(present) != 1:
        raise FormatError("bundle verificationMaterial needs exactly one of publicKey, x509CertificateChain, "
                          f"certificate (found {', '.join(present) or 'none'})")
    entries = material.get("tlogEntries", [])
    timestamps = material.get("timestampVerificationData", {})
    if not isinstance(entries, list):
        raise FormatError("bundle tlogEntries must be a list")
    if present[0] == "publicKey":
        if entries or timestamps:
            raise FormatError("key-signed bundles must not carry transparency-log entries or timestamps")
        return KIND_KEY, ()
    certs = _certificate_list(material)
    if entries:
        if media_type not in _KEYLESS_MEDIA_TYPES:
            raise FormatError(f"bundle mediaType {media_type!r} is not a Sigstore bundle media type")
        return KIND_SIGSTORE, certs
    if present[0] == "certificate":
        raise FormatError("a Sigstore certificate bundle without transparency-log entries cannot be verified",
                          hint="keyless bundles need their tlogEntries; certificate-chain bundles carry "
                               "x509CertificateChain")
    if timestamps:
        raise FormatError("certificate-chain bundles must not carry timestamps without transparency-log entries")
    return KIND_CERTIFICATE, certs


def parse_bundle(data: bytes, *, what: str = "signature file") -> Bundle:
    """Parse bundle bytes without verifying anything (``what`` names the input in messages).

    Raises:
        FormatError: not a Sigstore bundle with one DSSE signature and key, certificate-chain or keyless
            verification material.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise FormatError(f"{what} is larger than {MAX_BUNDLE_BYTES} bytes")
    doc = _obj(_json(data, what), "document", _TOP)
    media_type = doc.get("mediaType")
    if media_type not in _KEYLESS_MEDIA_TYPES:
        raise FormatError(f"bundle mediaType must be {SIGSTORE_BUNDLE_MEDIA_TYPE}")
    material = _obj(doc.get("verificationMaterial"), "verificationMaterial", _MATERIAL)
    kind, certificates = _material(material, media_type)
    if kind != KIND_SIGSTORE and media_type != SIGSTORE_BUNDLE_MEDIA_TYPE:
        raise FormatError(f"bundle mediaType must be {SIGSTORE_BUNDLE_MEDIA_TYPE}")
    hint = details = raw_key = None
    if kind == KIND_KEY:
        public_key = _obj(material["publicKey"], "verificationMaterial.publicKey", _PUBLIC_KEY)
        hint, details = public_key.get("hint"), public_key.get("keyDetails")
        if hint is not None and not (isinstance(hint, str) and (hint == "" or _HEX.fullmatch(hint))):
            raise FormatError("bundle publicKey.hint must be a hex string")
        if details is not None and not isinstance(details, str):
            raise FormatError("bundle publicKey.keyDetails must be a string")
        if "rawBytes" in public_key:
            raw_key = _b64(public_key["rawBytes"], "publicKey.rawBytes")
    envelope = _obj(doc.get("dsseEnvelope"), "dsseEnvelope", _ENVELOPE)
    payload_type = envelope.get("payloadType")
    if payload_type != DSSE_PAYLOAD_TYPE:
        raise FormatError(f"DSSE payloadType must be {DSSE_PAYLOAD_TYPE}")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise FormatError("DSSE envelope must carry exactly one signature")
    sig = _obj(signatures[0], "signature", _SIGNATURE)
    keyid = sig.get("keyid")
    if keyid is not None and not isinstance(keyid, str):
        raise FormatError("DSSE signature keyid must be a string")
    return Bundle(
        payload=_b64(envelope.get("payload"), "DSSE payload"),
        payload_type=payload_type,
        signature=_b64(sig.get("sig"), "DSSE signature"),
        keyid=keyid or None,
        key_hint=hint or None,
        key_details=details,
        document=doc,
        kind=kind,
        raw_public_key=raw_key,
        certificates=certificates,
        raw=bytes(data),
    )


def read_bundle(path: str | Path) -> Bundle:
    """Read and parse a signature file.

    Raises:
        FormatError: unreadable, oversized or malformed.
    """
    p = Path(path)
    try:
        data = read_regular(p, "signature file", max_bytes=MAX_BUNDLE_BYTES)
    except FormatError as exc:
        raise FormatError(exc.message, hint="pass the signature with --signature") from None
    return parse_bundle(data, what=f"signature file {str(p)!r}")


def _annotation(digests: SafetensorsDigests) -> dict[str, Any]:
    return {
        "header": digests.header,
        "tensors": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "digest": t.digest}
                    for t in digests.tensors],
    }


def statement_bytes(manifest: Manifest) -> bytes:
    """The in-toto Statement v1 (OMS v1.0 predicate) for ``manifest``, as the exact payload bytes."""
    resources: list[dict[str, Any]] = []
    annotated: set[str] = set()
    for r in manifest.resources:
        entry: dict[str, Any] = {"name": r.name, "digest": r.digest, "algorithm": r.algorithm}
        file = manifest.file_of(r.name)
        if file in manifest.tensors and file not in annotated:
            entry["annotations"] = {SAFETENSORS_ANNOTATION_KEY: _annotation(manifest.tensors[file])}
            annotated.add(file)
        resources.append(entry)
    statement = {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [{"name": manifest.model_name, "digest": {"sha256": manifest.root_digest}}],
        "predicateType": OMS_PREDICATE_TYPE,
        "predicate": {"serialization": manifest.serialization.to_dict(), "resources": resources},
    }
    return json.dumps(statement, indent=2).encode("utf-8")


def build_bundle(
    payload: bytes, signature: bytes, *, hint: str, details: str, keyid: str, certificates: tuple[bytes, ...] = ()
) -> bytes:
    """Assemble the bundle JSON around an already signed payload.

    With ``certificates`` (DER, leaf first) the verification material is an ``x509CertificateChain`` (as
    ``model_signing sign certificate`` writes), else a ``publicKey`` (hint + keyDetails).
    """
    material: dict[str, Any]
    if certificates:
        material = {"x509CertificateChain": {"certificates": [
            {"rawBytes": base64.b64encode(der).decode("ascii")} for der in certificates]}}
    else:
        material = {"publicKey": {"hint": hint, "keyDetails": details}}
    doc = {
        "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {**material, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": DSSE_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": keyid}],
        },
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")
