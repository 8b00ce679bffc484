"""The aggregator's audit trail: hash-chained JSONL with an ML-DSA-signed head per round.

Format ``qsafe-fl-audit/v1``, one JSON object per line (canonical: sorted keys, no spaces, ASCII):

- line 1, ``{"type": "header", "version": "qsafe-fl-audit/v1", "signer": KEY_ID, "scenario": {...}, "prev": 0*64}``;
- per round, one ``{"type": "client", "round", "client", "key_id", "digest", "norm", "decision", "weight",
  "note", "prev"}`` per client (``digest`` = ``sha256:`` of the update's float32 little-endian bytes, or of the
  encrypted container in encrypted mode, where ``norm`` is the key authority's decrypted norm check),
- then ``{"type": "round-head", "round", "records", "aggregate_digest", "prev", "signature"}``.

``prev`` is the hex SHA-256 of the previous line's bytes (without its newline), so changing, removing, inserting
or reordering any line breaks the link of the line after it. The round head's ML-DSA signature (context
``MLDSA_CONTEXT_AUDIT_HEAD``) covers the head without its ``signature`` field, hence through ``prev`` the whole log
up to that round. Not covered: cutting the log after a round head (keep the last head hash, which
:func:`verify_audit_log` returns, somewhere else to detect that).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from qsafe import _json, _limits
from qsafe._files import open_regular
from qsafe._labels import MLDSA_CONTEXT_AUDIT_HEAD
from qsafe.errors import AuditLogError, FormatError, SignatureError
from qsafe.keys import PrivateKey, PublicKey

__all__ = ["AUDIT_VERSION", "AuditSummary", "AuditWriter", "canonical", "update_digest", "verify_audit_log"]

AUDIT_VERSION = "qsafe-fl-audit/v1"
_GENESIS = "0" * 64


def update_digest(delta: Any) -> str:
    """``sha256:`` of a plaintext update's float32 little-endian bytes (a client record's and a round head's
    ``digest``): the same value in the simulation and in a Flower deployment."""
    import numpy as np

    return "sha256:" + hashlib.sha256(np.ascontiguousarray(delta, dtype="<f4").tobytes()).hexdigest()


def canonical(record: dict[str, Any]) -> bytes:
    """The canonical JSON bytes of a record (sorted keys, compact, ASCII)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class AuditWriter:
    """Appends records to an open binary stream, chaining each to the previous line and signing round heads.

    Args:
        stream: where lines go (the CLI passes an :func:`~qsafe._io.atomic_output` handle).
        signer: the aggregator's ML-DSA key.
        scenario: parameters recorded in the header.
    """

    def __init__(self, stream: IO[bytes], signer: PrivateKey, scenario: dict[str, Any]) -> None:
        self._stream = stream
        self._signer = signer
        self._prev = _GENESIS
        self._write({"type": "header", "version": AUDIT_VERSION, "signer": signer.public_key().key_id,
                     "scenario": scenario})

    def _write(self, record: dict[str, Any]) -> bytes:
        line = canonical({**record, "prev": self._prev})
        self._stream.write(line + b"\n")
        self._prev = hashlib.sha256(line).hexdigest()
        return line

    def round(self, server_round: int, clients: Iterable[dict[str, Any]], aggregate_digest: str) -> str:
        """Write one round: a record per client, then the signed head.

        Args:
            server_round: the round number.
            clients: per client ``client, key_id, digest, norm, decision, weight, note``.
            aggregate_digest: ``sha256:`` of the aggregate update.

        Returns:
            The hex hash of the head line (the value to anchor elsewhere).
        """
        count = 0
        for entry in clients:
            self._write({"type": "client", "round": server_round, **entry})
            count += 1
        head = {"type": "round-head", "round": server_round, "records": count, "aggregate_digest": aggregate_digest,
                "prev": self._prev}
        signature = self._signer.sign(canonical(head), MLDSA_CONTEXT_AUDIT_HEAD)
        self._write({**head, "signature": base64.b64encode(signature).decode("ascii")})
        return self._prev


@dataclass(frozen=True)
class AuditSummary:
    """What a verified log contains."""

    rounds: int
    records: int
    signer: str
    last_head: str


def _fail(number: int, record: dict[str, Any] | None, what: str) -> AuditLogError:
    where = f"record {number}"
    if record is not None and "round" in record:
        what_record = f"client {record['client']}" if "client" in record else str(record.get("type"))
        where += f" (round {record['round']}, {what_record})"
    return AuditLogError(f"{where}: {what}")  # one line: the record's fields (whatever the log says) escaped


def _check_head(number: int, record: dict[str, Any], key: PublicKey, expected_round: int, count: int) -> None:
    if record.get("round") != expected_round or record.get("records") != count:
        raise _fail(number, record, f"round head does not match its records (expected round {expected_round} "
                                    f"with {count} client records)")
    body = {k: v for k, v in record.items() if k != "signature"}
    try:
        signature = base64.b64decode(str(record.get("signature", "")), validate=True)
        key.verify(signature, canonical(body), MLDSA_CONTEXT_AUDIT_HEAD)
    except (ValueError, SignatureError) as exc:
        raise _fail(number, record, "round head signature does not verify") from exc


def verify_audit_log(path: str | Path, key: PublicKey) -> AuditSummary:
    """Check an audit log's hash chain, record order and every round head's ML-DSA signature.

    Args:
        path: the JSONL log.
        key: the aggregator's public key.

    Returns:
        A summary with the hash of the last signed head.

    Raises:
        AuditLogError: the first broken record is named (1-based line number, round, client): a broken link,
            a bad signature, an unexpected record, or records after the last signed head.
        FormatError: the log cannot be read.
    """
    try:
        return _verify_lines(path, key)
    except OSError as exc:
        raise FormatError(f"cannot read audit log {path}: {exc.strerror or exc}") from exc


def _lines(handle: IO[bytes], path: str | Path) -> Iterable[bytes]:
    """The log's lines without their newline, each at most AUDIT_LINE_MAX_BYTES (never one unbounded read)."""
    while raw := handle.readline(_limits.AUDIT_LINE_MAX_BYTES + 1):
        if len(raw) > _limits.AUDIT_LINE_MAX_BYTES:
            raise FormatError(f"audit log {path}: a line is longer than {_limits.AUDIT_LINE_MAX_BYTES} bytes")
        yield raw.rstrip(b"\n")


def _verify_lines(path: str | Path, key: PublicKey) -> AuditSummary:
    prev, count, expected_round, number = _GENESIS, 0, 1, 0
    record: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    with open_regular(path, "audit log") as handle:
        for number, line in enumerate(_lines(handle, path), 1):
            try:
                record = _json.loads(line, "line")
            except FormatError as exc:
                raise _fail(number, None, f"not a JSON object ({exc})") from None
            if not isinstance(record, dict):
                raise _fail(number, None, "not a JSON object")
            if record.get("prev") != prev:
                if number == 1:
                    raise _fail(number, record, "the first record must start the chain")
                # the link that fails is in this record, but what changed is the record before it
                raise _fail(number - 1, previous, f"hash chain broken: record {number} does not link to it "
                                                  f"(record {number - 1} was changed, or records were removed or "
                                                  "inserted between them)")
            if line != canonical(record):
                raise _fail(number, record, "not in canonical form (re-serialised or edited)")
            kind = record.get("type")
            if number == 1:
                if kind != "header" or record.get("version") != AUDIT_VERSION:
                    raise _fail(number, record, f"expected a {AUDIT_VERSION} header")
                if record.get("signer") != key.key_id:
                    raise _fail(number, record, f"the log is signed by {record.get('signer')}, not by {key.key_id}")
            elif kind == "client" and record.get("round") == expected_round:
                count += 1
            elif kind == "round-head":
                _check_head(number, record, key, expected_round, count)
                expected_round, count = expected_round + 1, 0
            else:
                raise _fail(number, record, f"unexpected {kind!r} record here (expected round {expected_round})")
            prev, previous = hashlib.sha256(line).hexdigest(), record
    if number == 0:
        raise AuditLogError(f"{path}: empty audit log")
    if count or (record is not None and record.get("type") != "round-head"):
        raise _fail(number, record, "records after the last signed round head (log cut or still being written)")
    return AuditSummary(expected_round - 1, number, key.key_id, prev)
