"""The signed payload: an in-toto Statement v1 whose predicate is OMS v1.0, or model-signing v0.2's legacy one.

Two predicate generations exist in published bundles:

- ``https://model_signing/signature/v1.0`` (model-signing >= 0.3, OMS v1.0): one subject (the model name and the
  root digest), ``predicate.serialization`` and ``predicate.resources``. The root digest is re-computed.
- ``https://model_signing/Digests/v0.1`` (model-signing 0.2.x): one subject per file, ``digest.sha256`` each,
  annotated ``actual_hash_algorithm: file-sha256``; no serialization, no root digest, no ignore list. It means
  ``files``/``sha256`` with git paths ignored, which is how model-signing 1.1.1 still verifies it.

Parsing is strict (types, hex digests of the right length, safe resource names) and never trusts the payload
before its signature verified: callers parse only verified payload bytes.
"""

from __future__ import annotations

import re
from typing import Any

from qsafe._hashing.walk import GIT_PATHS
from qsafe._labels import IN_TOTO_STATEMENT_TYPE, OMS_PREDICATE_TYPE, SAFETENSORS_ANNOTATION_KEY
from qsafe.errors import FormatError
from qsafe.manifest import Manifest, Resource, SafetensorsDigests, Serialization, TensorDigest

__all__ = ["LEGACY_MODEL_NAME", "LEGACY_PREDICATE_TYPE", "manifest_from_statement"]

LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
LEGACY_MODEL_NAME = "compat-undefined-not-present"  # what model-signing calls a v0.2 manifest's model
_LEGACY_ALGORITHM = "file-sha256"
_HEX = re.compile(r"[0-9a-f]+")  # used with fullmatch: `$` would also match before a final newline
_DIGEST_BYTES = {"sha256": 32, "blake3": 32, "blake2b": 64}


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"statement {what} must be a JSON object")
    return value


def _parse_tensors(value: Any) -> SafetensorsDigests:
    doc = _obj(value, "safetensors annotation")
    header, tensors = doc.get("header"), doc.get("tensors")
    if not isinstance(header, str) or not _HEX.fullmatch(header) or not isinstance(tensors, list):
        raise FormatError("safetensors annotation needs a hex header digest and a tensors list")
    out: list[TensorDigest] = []
    for t in tensors:
        t = _obj(t, "tensor entry")
        name, dtype, shape, digest = t.get("name"), t.get("dtype"), t.get("shape"), t.get("digest")
        if not (isinstance(name, str) and isinstance(dtype, str) and isinstance(digest, str) and _HEX.fullmatch(digest)
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
    if not (isinstance(name, str) and isinstance(alg, str) and isinstance(digest, str) and _HEX.fullmatch(digest)):
        raise FormatError("each resource needs string name, algorithm and hex digest")
    base = serialization.hash_type
    if alg != base and alg != f"{base}-sharded-{serialization.shard_size}":
        raise FormatError(f"resource {name!r} algorithm {alg!r} does not match hash_type {base!r}")
    if len(digest) != 2 * _DIGEST_BYTES[base]:
        raise FormatError(f"resource {name!r} digest has the wrong length for {base}")
    return Resource(name, alg, digest)


def _file_of(name: str, serialization: Serialization) -> str:
    return name.rsplit(":", 2)[0] if serialization.method == "shards" else name


def _legacy_manifest(statement: dict[str, Any]) -> Manifest:
    """model-signing 0.2's ``Digests/v0.1``: one subject per file, SHA-256 of the whole file."""
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise FormatError("a Digests/v0.1 statement needs one subject per file")
    resources: list[Resource] = []
    for raw in subjects:
        subject = _obj(raw, "subject")
        name, digest = subject.get("name"), _obj(subject.get("digest"), "subject digest").get("sha256")
        annotations = subject.get("annotations", {})
        algorithm = _obj(annotations, "subject annotations").get("actual_hash_algorithm", _LEGACY_ALGORITHM)
        if algorithm != _LEGACY_ALGORITHM:
            raise FormatError(f"Digests/v0.1 subject {name!r} uses {algorithm!r}; only {_LEGACY_ALGORITHM} is known")
        if not (isinstance(name, str) and isinstance(digest, str) and _HEX.fullmatch(digest) and len(digest) == 64):
            raise FormatError("each Digests/v0.1 subject needs a name and a hex sha256 digest")
        resources.append(Resource(name, "sha256", digest))
    serialization = Serialization("files", "sha256", False, None, GIT_PATHS)
    return Manifest(LEGACY_MODEL_NAME, serialization, tuple(resources), {}, legacy=True)


def manifest_from_statement(statement: dict[str, Any]) -> Manifest:
    """Turn a (verified) in-toto statement into a :class:`~qsafe.manifest.Manifest`, checking the root digest.

    Args:
        statement: the decoded DSSE payload.

    Returns:
        The signed manifest (``legacy=True`` for a model-signing 0.2 ``Digests/v0.1`` statement).

    Raises:
        FormatError: wrong types, unknown predicate, unsafe names, or a root digest that does not match.
    """
    if statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise FormatError(f"statement is not an in-toto Statement v1 ({IN_TOTO_STATEMENT_TYPE})")
    if statement.get("predicateType") == LEGACY_PREDICATE_TYPE:
        return _legacy_manifest(statement)
    if statement.get("predicateType") != OMS_PREDICATE_TYPE:
        raise FormatError(f"statement predicate is {statement.get('predicateType')!r}, not {OMS_PREDICATE_TYPE} "
                          "(a model signature)")
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
