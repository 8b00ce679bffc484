"""The server's signed, hash-chained audit trail of Flower rounds, in qsafe's ``qsafe-fl-audit/v1`` format.

Checkable with ``qsafe fl audit verify LOG --key AGGREGATOR.pub``. Each round's records and its ML-DSA-signed
head are written with one ``write`` and flushed to disk (fsync) before the round's result is returned to Flower,
so a crash between rounds leaves a log that verifies up to the last completed round, and a round that did not
complete leaves nothing of itself. The file is created exclusively: an existing log is never replaced.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qsafe.errors import OutputExistsError
from qsafe.federated.audit import AuditWriter
from qsafe.keys import PrivateKey

__all__ = ["AuditTrail"]


class AuditTrail:
    """Append-only audit log of one Flower run.

    Args:
        path: the log file (must not exist).
        signer: the aggregator's ML-DSA key (round heads are signed with it).
        scenario: what the header records (strategy, defense, context fingerprint, ...).

    Raises:
        OutputExistsError: ``path`` exists.
        KeyFileError: the key is not post-quantum.
    """

    def __init__(self, path: str | os.PathLike[str], signer: PrivateKey, scenario: dict[str, Any]) -> None:
        from qsafe.errors import KeyFileError

        if not signer.public_key().post_quantum:
            raise KeyFileError(f"{signer.algorithm} is not post-quantum: audit round heads are signed with ML-DSA")
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError as exc:
            raise OutputExistsError(f"{self.path} exists; an audit log is never replaced") from exc
        self._buffer = io.BytesIO()
        self._writer = AuditWriter(self._buffer, signer, scenario)
        self._flush()
        self.last_head: str | None = None

    def _flush(self) -> None:
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        os.write(self._fd, data)
        os.fsync(self._fd)

    def round(self, server_round: int, clients: Iterable[dict[str, Any]], aggregate_digest: str) -> str:
        """Record one round (a record per node, then the signed head) durably; return the head's hash."""
        self.last_head = self._writer.round(server_round, clients, aggregate_digest)
        self._flush()
        return self.last_head

    def close(self) -> None:
        """Close the file (records already written stay)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
