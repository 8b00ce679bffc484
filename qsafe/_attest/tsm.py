"""configfs-tsm (Linux ``/sys/kernel/config/tsm/report``): one report request = one directory.

Protocol (Documentation/ABI/testing/configfs-tsm): mkdir an entry, write up to 64 bytes to ``inblob``, read
``outblob`` (the TDX quote or SEV-SNP report), ``auxblob`` (SEV-SNP certificate table, optional) and
``provider``; ``generation`` counts writes to the entry, so reading it before and after ``outblob`` detects a
concurrent writer that changed the request under us. The entry is removed afterwards.
"""

from __future__ import annotations

import os
import secrets
import struct
import uuid
from pathlib import Path

from qsafe.errors import FormatError, UnavailableError

__all__ = ["TSM_ROOT", "TsmReport", "parse_cert_table", "request_report"]

TSM_ROOT = Path("/sys/kernel/config/tsm/report")
INBLOB_MAX = 64

# GUIDs of the SEV-SNP extended-report certificate table (GHCB spec, table 6).
_CERT_GUIDS = {
    uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"): "vcek",
    uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"): "vlek",
    uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"): "ask",
    uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"): "ark",
}


class TsmReport:
    """What one configfs-tsm request returned."""

    def __init__(self, provider: str, outblob: bytes, auxblob: bytes | None, generation: int) -> None:
        self.provider = provider
        self.outblob = outblob
        self.auxblob = auxblob
        self.generation = generation


def _read(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def request_report(report_data: bytes, root: Path = TSM_ROOT, *, entry_name: str | None = None) -> TsmReport:
    """Request one report with ``report_data`` (≤ 64 bytes) through configfs-tsm under ``root``.

    Raises:
        UnavailableError: no configfs-tsm here (not in a TDX/SEV-SNP guest), or the entry cannot be made.
        FormatError: ``report_data`` too long, or the request changed while reading (generation mismatch).
    """
    if len(report_data) > INBLOB_MAX:
        raise FormatError(f"configfs-tsm inblob takes at most {INBLOB_MAX} bytes, got {len(report_data)}")
    if not root.is_dir():
        raise UnavailableError(f"no configfs-tsm at {root}: not a TDX or SEV-SNP guest (or configfs not mounted)")
    entry = root / (entry_name or f"qsafe-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.mkdir(entry)
    except OSError as exc:
        raise UnavailableError(f"cannot create configfs-tsm entry {entry}: {exc.strerror}") from exc
    if not (entry / "generation").exists():  # the kernel populates a new entry; a plain folder stays empty
        os.rmdir(entry)
        raise UnavailableError(f"{root} is not a configfs-tsm report directory (a new entry has no attributes)")
    try:
        with open(entry / "inblob", "wb") as handle:
            handle.write(report_data)
        before = int(_read(entry / "generation").strip() or b"0")
        outblob = _read(entry / "outblob")
        auxblob = _read(entry / "auxblob") if (entry / "auxblob").exists() else None
        provider = _read(entry / "provider").decode("ascii", "replace").strip()
        after = int(_read(entry / "generation").strip() or b"0")
    except (OSError, ValueError) as exc:
        raise UnavailableError(f"configfs-tsm request failed: {exc}") from exc
    finally:
        try:
            os.rmdir(entry)
        except OSError:
            pass  # a fake (test) directory holds files; the kernel's entry is removable
    if before != after:
        raise FormatError(f"configfs-tsm entry changed while reading (generation {before} -> {after}); retry")
    if not outblob:
        raise UnavailableError("configfs-tsm returned an empty report")
    return TsmReport(provider, outblob, auxblob or None, after)


def parse_cert_table(auxblob: bytes) -> dict[str, bytes]:
    """Parse a SEV-SNP certificate table: entries (GUID, offset u32, length u32) up to an all-zero GUID.

    Raises:
        FormatError: an entry points outside the blob.
    """
    certs: dict[str, bytes] = {}
    offset = 0
    while offset + 24 <= len(auxblob):
        guid = uuid.UUID(bytes_le=auxblob[offset : offset + 16])
        start, length = struct.unpack_from("<II", auxblob, offset + 16)
        offset += 24
        if guid.int == 0:
            break
        if start + length > len(auxblob):
            raise FormatError("SEV-SNP certificate table entry points outside the auxblob")
        if guid in _CERT_GUIDS:
            certs[_CERT_GUIDS[guid]] = auxblob[start : start + length]
    return certs
