"""Evidence documents: what collectors produce and verifiers appraise.

A document is JSON (``format: qsafe-evidence/v1``) with the collection time, the nonce the evidence was bound to,
and a list of items, each tagged with its ``kind``:

- ``nvidia-gpu``: ``report`` (hex SPDM GET_MEASUREMENTS transcript), ``cert_chain`` (PEM, leaf first);
- ``nvidia-cc``: NVML confidential-computing state ``claims`` (self-reported by the driver, unsigned);
- ``sev-snp``: ``report`` (base64 1184-byte report), ``certs`` (PEM VCEK/VLEK, ASK/ASVK[, ARK]);
- ``tdx``: ``quote`` (base64), ``collateral`` (dcap-qvl JSON: TCB info, QE identity, CRLs);
- ``software``: software-environment ``claims`` (self-reported, unsigned).

Items may carry ``provenance`` (where a recorded item came from).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsafe import _json, _limits
from qsafe.errors import FormatError

__all__ = ["EVIDENCE_FORMAT", "Evidence", "format_time", "load_evidence", "parse_time", "utcnow"]

EVIDENCE_FORMAT = "qsafe-evidence/v1"
_MAX_EVIDENCE_BYTES = _limits.EVIDENCE_MAX_BYTES


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def parse_time(text: str) -> dt.datetime:
    """Parse an ISO-8601 time into UTC; a naive time is taken as UTC.

    Raises:
        FormatError: not an ISO-8601 time, or outside the years qsafe accepts (see :mod:`qsafe._limits`).
    """
    return _json.parse_time(text)


def format_time(value: dt.datetime) -> str:
    """Render a time as ISO-8601 UTC with a ``Z``."""
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise FormatError(f"{what} is not valid base64") from exc


def hexdecode(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{what} is not valid hex") from exc


@dataclass
class Evidence:
    """A collected or recorded set of evidence items.

    Attributes:
        collected_at: when the evidence was collected (self-reported by the collector).
        nonce: the 32-byte value placed in the GPU nonce / TEE report data, or None.
        items: the evidence items (dicts with a ``kind``).
    """

    collected_at: dt.datetime
    nonce: bytes | None
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": EVIDENCE_FORMAT,
            "collected_at": format_time(self.collected_at),
            "nonce": self.nonce.hex() if self.nonce is not None else None,
            "items": self.items,
        }

    def to_bytes(self) -> bytes:
        """Canonical serialization (sorted keys, two-space indent, trailing newline)."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    def digest(self) -> str:
        """``sha256:`` + hex SHA-256 of :meth:`to_bytes` (the subject of an appraisal result)."""
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_json(cls, doc: Any) -> Evidence:
        """Build from a parsed JSON document.

        Raises:
            FormatError: not a qsafe evidence document.
        """
        if not isinstance(doc, dict) or doc.get("format") != EVIDENCE_FORMAT:
            raise FormatError(f"not a qsafe evidence document (expected format {EVIDENCE_FORMAT!r})")
        from qsafe.attestation.verifiers import kinds  # the installed verifiers' kinds (qsafe.verifiers registry)

        items = doc.get("items")
        known = kinds()
        if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("kind") in known for i in items):
            raise FormatError(f"evidence items must be objects whose kind is one of {', '.join(known)}",
                              hint="a plugin adds evidence kinds through the entry-point group qsafe.verifiers")
        if not isinstance(doc.get("collected_at"), str):
            raise FormatError("evidence has no collected_at time")
        nonce = doc.get("nonce")
        return cls(
            collected_at=_json.parse_time(doc["collected_at"], "evidence collected_at"),
            nonce=hexdecode(nonce, "evidence nonce") if isinstance(nonce, str) else None,
            items=items,
        )


def load_evidence(path: str | Path) -> Evidence:
    """Read a qsafe evidence JSON file.

    Raises:
        FormatError: unreadable, too large, not JSON, or not an evidence document.
    """
    doc = _json.load_file(path, "evidence", max_bytes=_MAX_EVIDENCE_BYTES)
    try:
        return Evidence.from_json(doc)
    except FormatError as exc:
        raise FormatError(f"evidence {str(path)!r}: {exc.message}", hint=exc.hint) from None
