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

Parsing never trusts the file: sizes are capped, base64 is strict, every field is type-checked, and resource
names that are absolute or contain ``..`` are refused (:class:`~qsafe.errors.FormatError`).
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
from qsafe._files import read_regular
from qsafe._labels import (
    DSSE_PAYLOAD_TYPE,
    IN_TOTO_STATEMENT_TYPE,
    OMS_PREDICATE_TYPE,
    SAFETENSORS_ANNOTATION_KEY,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from qsafe.errors import FormatError
from qsafe.manifest import Manifest, Resource, SafetensorsDigests, Serialization, TensorDigest

__all__ = [
    "DEFAULT_SIGNATURE_NAME",
    "MAX_BUNDLE_BYTES",
    "Bundle",
    "build_bundle",
    "default_signature_path",
    "manifest_from_statement",
    "pae",
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
_HEX = re.compile(r"^[0-9a-f]+$")
_DIGEST_BYTES = {"sha256": 32, "blake3": 32, "blake2b": 64}

def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the exact bytes that are signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


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


# Every field a key-signed bundle may carry. Unknown fields are refused, so that no byte of the file can change
# without verification noticing (the OMS bundle and envelope schemas are closed the same way).
_TOP = frozenset({"mediaType", "verificationMaterial", "dsseEnvelope"})
_MATERIAL = frozenset({"publicKey", "tlogEntries", "timestampVerificationData"})
_PUBLIC_KEY = frozenset({"hint", "keyDetails"})
_ENVELOPE = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE = frozenset({"sig", "keyid"})


def parse_bundle(data: bytes, *, what: str = "signature file") -> Bundle:
    """Parse bundle bytes without verifying anything (``what`` names the input in messages).

    Raises:
        FormatError: not a Sigstore bundle v0.3 with one DSSE signature and key verification material.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise FormatError(f"{what} is larger than {MAX_BUNDLE_BYTES} bytes")
    doc = _obj(_json(data, what), "document", _TOP)
    if doc.get("mediaType") != SIGSTORE_BUNDLE_MEDIA_TYPE:
        raise FormatError(f"bundle mediaType must be {SIGSTORE_BUNDLE_MEDIA_TYPE}")
    material = _obj(doc.get("verificationMaterial"), "verificationMaterial")
    if "publicKey" in material:
        _obj(material, "verificationMaterial", _MATERIAL)
        if material.get("tlogEntries", []) != [] or material.get("timestampVerificationData", {}) != {}:
            raise FormatError("key-signed bundles must not carry transparency-log entries or timestamps")
    else:
        raise FormatError(
            "bundle has no publicKey verification material (certificate/keyless bundles are not supported)",
            hint="verify Sigstore keyless bundles with `model_signing verify sigstore`",
        )
    public_key = _obj(material["publicKey"], "verificationMaterial.publicKey", _PUBLIC_KEY)
    hint, details = public_key.get("hint"), public_key.get("keyDetails")
    if hint is not None and not (isinstance(hint, str) and (hint == "" or _HEX.match(hint))):
        raise FormatError("bundle publicKey.hint must be a hex string")
    if details is not None and not isinstance(details, str):
        raise FormatError("bundle publicKey.keyDetails must be a string")
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


def build_bundle(payload: bytes, signature: bytes, *, hint: str, details: str, keyid: str) -> bytes:
    """Assemble the bundle JSON around an already signed payload."""
    doc = {
        "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint, "keyDetails": details}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": DSSE_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": keyid}],
        },
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _parse_tensors(value: Any) -> SafetensorsDigests:
    doc = _obj(value, "safetensors annotation")
    header, tensors = doc.get("header"), doc.get("tensors")
    if not isinstance(header, str) or not _HEX.match(header) or not isinstance(tensors, list):
        raise FormatError("safetensors annotation needs a hex header digest and a tensors list")
    out: list[TensorDigest] = []
    for t in tensors:
        t = _obj(t, "tensor entry")
        name, dtype, shape, digest = t.get("name"), t.get("dtype"), t.get("shape"), t.get("digest")
        if not (isinstance(name, str) and isinstance(dtype, str) and isinstance(digest, str) and _HEX.match(digest)
                and isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                    for d in shape)):
            raise FormatError("malformed tensor entry in safetensors annotation")
        out.append(TensorDigest(name, dtype, tuple(shape), digest))
    if len({t.name for t in out}) != len(out):
        raise FormatError("safetensors annotation lists a tensor twice")
    return SafetensorsDigests(header, tuple(out))


def _parse_resource(r: Any, serialization: Serialization) -> Resource:
    r = _obj(r, "resource")
    name, alg, digest = r.get("name"), r.get("algorithm"), r.get("digest")
    if not (isinstance(name, str) and isinstance(alg, str) and isinstance(digest, str) and _HEX.match(digest)):
        raise FormatError("each resource needs string name, algorithm and hex digest")
    base = serialization.hash_type
    if alg != base and alg != f"{base}-sharded-{serialization.shard_size}":
        raise FormatError(f"resource {name!r} algorithm {alg!r} does not match hash_type {base!r}")
    if len(digest) != 2 * _DIGEST_BYTES[base]:
        raise FormatError(f"resource {name!r} digest has the wrong length for {base}")
    return Resource(name, alg, digest)


def manifest_from_statement(statement: dict[str, Any]) -> Manifest:
    """Turn a (verified) in-toto statement into a :class:`Manifest`, checking the root digest.

    Raises:
        FormatError: wrong types, unknown predicate, unsafe names, or a root digest that does not match.
    """
    if statement.get("_type") != IN_TOTO_STATEMENT_TYPE or statement.get("predicateType") != OMS_PREDICATE_TYPE:
        raise FormatError(f"statement is not an in-toto Statement v1 with predicate {OMS_PREDICATE_TYPE}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise FormatError("statement must have exactly one subject")
    subject = _obj(subjects[0], "subject")
    name, digest = subject.get("name"), _obj(subject.get("digest"), "subject digest").get("sha256")
    if not isinstance(name, str) or not isinstance(digest, str):
        raise FormatError("subject needs a name and a sha256 digest")
    predicate = _obj(statement.get("predicate"), "predicate")
    serialization = Serialization.from_dict(predicate.get("serialization"))
    raw_resources = predicate.get("resources")
    if not isinstance(raw_resources, list):
        raise FormatError("predicate.resources must be a list")
    resources = tuple(_parse_resource(r, serialization) for r in raw_resources)
    tensors: dict[str, SafetensorsDigests] = {}
    for raw, res in zip(raw_resources, resources):
        ann = raw.get("annotations")
        if isinstance(ann, dict) and SAFETENSORS_ANNOTATION_KEY in ann:
            file = _file_of(res.name, serialization)
            if file in tensors:
                raise FormatError(f"tensor digests for {file!r} appear twice")
            tensors[file] = _parse_tensors(ann[SAFETENSORS_ANNOTATION_KEY])
    manifest = Manifest(name, serialization, resources, tensors)
    if manifest.root_digest != digest:
        raise FormatError("manifest is inconsistent: the resources do not hash to the subject digest")
    return manifest


def _file_of(name: str, serialization: Serialization) -> str:
    return name.rsplit(":", 2)[0] if serialization.method == "shards" else name
