"""The signed dataset manifest: a Merkle root over rows, so a tampered copy is refused and its changed rows named.

A manifest is an in-toto Statement (predicate ``https://qsafe.dev/dataset-manifest/v1``) whose one subject is the
CSV file, digests ``sha256`` (the file's bytes) and ``rfc9162-sha256-rows`` (the Merkle root over the data rows);
the predicate records the header digest, row count, class counts, the feature transform and the provenance. It is
ML-DSA-signed in a DSSE envelope with the dataset-evidence context. A sidecar file of the leaf hashes
(``*.leaves``: the 32-byte leaf hashes, authenticated by recomputing the signed root) lets a verifier name the
rows that changed; without it a tampered copy is still refused, the rows are just not located.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsafe import _labels
from qsafe.errors import DatasetMismatchError, FormatError
from qsafe.fraud import merkle
from qsafe.fraud._signed import sign_statement, statement, verify_statement
from qsafe.fraud.data import FEATURE_TRANSFORM, FraudData, parse_csv
from qsafe.keys import PrivateKey, PublicKey

__all__ = [
    "MANIFEST_FORMAT",
    "ROOT_DIGEST_NAME",
    "DatasetManifest",
    "build_manifest",
    "dataset_digest",
    "read_leaves",
    "sign_manifest",
    "verify_dataset",
    "verify_manifest",
]

MANIFEST_FORMAT = "qsafe-dataset-manifest/v1"
ROOT_DIGEST_NAME = "rfc9162-sha256-rows"


def dataset_digest(root_hex: str) -> str:
    """The name qsafe gives a dataset everywhere (audits, model card): ``rfc9162-sha256-rows:<root>``."""
    return f"{ROOT_DIGEST_NAME}:{root_hex}"


@dataclass(frozen=True)
class DatasetManifest:
    """What a dataset manifest says (``leaves`` only when computed here or read from a verified sidecar)."""

    name: str
    file_sha256: str
    size: int
    header_sha256: str
    rows: int
    root: str
    class_counts: dict[str, int]
    provenance: dict[str, Any] = field(default_factory=dict)
    leaves: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def digest(self) -> str:
        return dataset_digest(self.root)

    def predicate(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "file": {"name": self.name, "sha256": self.file_sha256, "bytes": self.size},
            "header": {"sha256": self.header_sha256},
            "rows": self.rows,
            "merkle": {"algorithm": _labels.DATASET_MERKLE_ALGORITHM, "root": self.root,
                       "leaf": "SHA-256(0x00 || row bytes, line ending excluded), rows in file order"},
            "labels": {"column": "Class", "counts": dict(self.class_counts)},
            "features": FEATURE_TRANSFORM,
            "provenance": dict(self.provenance),
        }

    def subject_digests(self) -> dict[str, str]:
        return {"sha256": self.file_sha256, ROOT_DIGEST_NAME: self.root}


def build_manifest(data: FraudData, raw: bytes, *, name: str | None = None,
                   provenance: Mapping[str, Any] | None = None) -> DatasetManifest:
    """The manifest of ``data`` (parsed from exactly ``raw``)."""
    leaves = tuple(merkle.leaf_hash(row) for row in data.rows)
    counts = {"0": int((data.labels == 0).sum()), "1": int((data.labels == 1).sum())}
    return DatasetManifest(
        name=name or Path(data.source).name, file_sha256=hashlib.sha256(raw).hexdigest(), size=len(raw),
        header_sha256=hashlib.sha256(data.header).hexdigest(), rows=data.n, root=merkle.root(leaves).hex(),
        class_counts=counts, provenance=dict(provenance or {}), leaves=leaves)


def sign_manifest(manifest: DatasetManifest, key: PrivateKey) -> bytes:
    """The signed manifest (DSSE envelope JSON bytes)."""
    st = statement(manifest.name, manifest.subject_digests(), _labels.DATASET_MANIFEST_PREDICATE_TYPE,
                   manifest.predicate())
    return sign_statement(st, key)


def _hex(value: Any, what: str) -> str:
    if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
        raise FormatError(f"dataset manifest: {what} must be 64 lower-case hex digits")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"dataset manifest: {what} must be a non-negative integer")
    return value


def _from_statement(st: dict[str, Any]) -> DatasetManifest:
    p = st["predicate"]
    try:
        if p.get("format") != MANIFEST_FORMAT:
            raise FormatError(f"dataset manifest: format is not {MANIFEST_FORMAT}")
        if p["merkle"]["algorithm"] != _labels.DATASET_MERKLE_ALGORITHM:
            raise FormatError(f"dataset manifest: unknown Merkle algorithm {p['merkle']['algorithm']!r}")
        subject = st["subject"][0]
        manifest = DatasetManifest(
            name=str(p["file"]["name"]), file_sha256=_hex(p["file"]["sha256"], "file.sha256"),
            size=_int(p["file"]["bytes"], "file.bytes"), header_sha256=_hex(p["header"]["sha256"], "header.sha256"),
            rows=_int(p["rows"], "rows"), root=_hex(p["merkle"]["root"], "merkle.root"),
            class_counts={str(k): _int(v, "labels.counts") for k, v in dict(p["labels"]["counts"]).items()},
            provenance=dict(p.get("provenance", {})))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise FormatError(f"dataset manifest: malformed predicate ({type(exc).__name__}: {exc})") from exc
    if subject["digest"] != manifest.subject_digests():
        raise FormatError("dataset manifest: the subject's digests do not match the predicate")
    return manifest


def verify_manifest(data: bytes, keys: Sequence[PublicKey], what: str = "dataset manifest") -> DatasetManifest:
    """Verify a signed manifest and return what it says.

    Raises:
        FormatError: malformed envelope, statement or predicate. SignatureError: no key verifies it.
    """
    st, _signer = verify_statement(data, keys, _labels.DATASET_MANIFEST_PREDICATE_TYPE, what)
    return _from_statement(st)


def read_leaves(data: bytes, manifest: DatasetManifest) -> tuple[bytes, ...]:
    """Parse a leaf sidecar and authenticate it against the signed root.

    Raises:
        FormatError: wrong size, or leaves that do not hash to the manifest's root.
    """
    if len(data) != 32 * manifest.rows:
        raise FormatError(f"leaf file holds {len(data)} bytes, not 32 x {manifest.rows} rows")
    leaves = tuple(data[i:i + 32] for i in range(0, len(data), 32))
    if merkle.root(leaves).hex() != manifest.root:
        raise FormatError("leaf file does not hash to the signed Merkle root (it belongs to other data)")
    return leaves


def _line(index: int) -> int:
    return index + 2  # header is line 1


def _mismatch(name: str, diff: merkle.RowDiff | None, header_changed: bool) -> DatasetMismatchError:
    parts = []
    if header_changed:
        parts.append("the header changed")
    if diff is None:
        parts.append("rows changed (pass the signed leaf file to locate them)")
    else:
        for what, rows in (("changed", diff.changed), ("inserted", diff.inserted), ("deleted", diff.deleted)):
            if rows:
                shown = ", ".join(str(r) for r in rows[:20]) + (f" ... ({len(rows)} in all)" if len(rows) > 20 else "")
                parts.append(f"{what} row(s) {shown}")
    msg = f"{name} differs from its signed manifest: " + "; ".join(parts)
    msg += " (rows numbered from 0 after the header; file line = row + 2)"
    return DatasetMismatchError(msg, changed_rows=list(diff.changed) if diff else [],
                                inserted_rows=list(diff.inserted) if diff else [],
                                deleted_rows=list(diff.deleted) if diff else [])


def verify_dataset(csv: str | os.PathLike[str] | bytes, manifest: bytes, keys: Sequence[PublicKey], *,
                   leaves: bytes | None = None, name: str | None = None) -> tuple[FraudData, DatasetManifest]:
    """Verify a dataset against its signed manifest, reading the CSV once.

    Args:
        csv: the CSV path (or its bytes).
        manifest: the signed manifest (DSSE envelope bytes).
        keys: trusted public keys of the data owner.
        leaves: the signed data's leaf sidecar, to locate changed rows.
        name: name for messages.

    Returns:
        (the parsed data, exactly the bytes that were hashed; the verified manifest).

    Raises:
        SignatureError / FormatError: the manifest does not verify or is malformed.
        DatasetMismatchError: the data differs; changed/inserted/deleted rows named when ``leaves`` is given.
    """
    from qsafe._files import read_regular
    from qsafe.fraud.data import MAX_CSV_BYTES

    signed = verify_manifest(manifest, keys)
    raw = csv if isinstance(csv, bytes) else read_regular(csv, "dataset", max_bytes=MAX_CSV_BYTES)
    label = name or (signed.name if isinstance(csv, bytes) else os.fsdecode(csv))
    if hashlib.sha256(raw).hexdigest() == signed.file_sha256:
        data = parse_csv(raw, label)
        return data, build_manifest(data, raw, name=signed.name, provenance=signed.provenance)
    try:
        data = parse_csv(raw, label)
    except FormatError as exc:
        raise DatasetMismatchError(f"{label} differs from its signed manifest and does not parse: {exc}") from exc
    current = build_manifest(data, raw, name=signed.name, provenance=signed.provenance)
    header_changed = current.header_sha256 != signed.header_sha256
    if current.root == signed.root and not header_changed:
        # Same rows, same header: only line endings or a trailing newline differ. Still not the signed file.
        raise DatasetMismatchError(f"{label}: same rows as the signed data but not the same file bytes "
                                   "(line endings or final newline)")
    diff = merkle.diff_rows(read_leaves(leaves, signed), current.leaves) if leaves is not None else None
    raise _mismatch(label, diff, header_changed)
