"""SEAL objects in and out of bytes, through SEAL's own (de)serialization and a spool file.

TenSEAL's SEAL binding (``tenseal.sealapi``) saves and loads objects only through a path, and saves them
zstd-compressed. A :class:`Spool` is an anonymous memory file (``memfd_create``) reached through
``/proc/self/fd`` (nothing is left behind, even when the process is killed). Plaintexts are *loaded* from bytes qsafe lays out itself (SEAL checks
every coefficient against the plain modulus on load), which costs a file write instead of TenSEAL's list
conversion and SEAL's batch encoder; ciphertexts are saved by SEAL and read back.

The layouts (SEAL 4.x serialization):

- a 16-byte header: magic ``0xA15E``, header size 16, SEAL major and minor version, compression mode (0 none,
  2 zstd), reserved, total size (u64);
- a plaintext's members: parms_id (32 bytes, zero outside NTT form), coefficient count (u64), scale (f64), then an
  inner SEAL object (16-byte header, u64 count, the coefficients as u64);
- a ciphertext's members: see :mod:`qsafe._he.raw`.
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Any

import numpy as np

from qsafe._he.backend import tenseal
from qsafe.errors import FormatError, MissingDependencyError

__all__ = ["PlainCodec", "Spool", "body", "seal_bytes", "seal_module"]

SEAL_MAGIC = 0xA15E
COMPR_NONE, COMPR_ZSTD = 0, 2
_PLAIN_PREFIX = 32 + 8 + 8 + 16 + 8  # parms_id, coeff_count, scale, inner header, inner count


def seal_module() -> Any:
    """``tenseal.sealapi`` (after TenSEAL itself is importable)."""
    tenseal()
    import tenseal.sealapi as seal

    return seal


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - part of the he extra
        raise MissingDependencyError("reading SEAL objects needs zstandard", hint="pip install 'qsafe[he]'") \
            from exc
    return zstandard


def body(data: bytes, expected: int | None, *, limit: int = 1 << 28) -> bytes:
    """A SEAL object's members, decompressed: exactly ``expected`` bytes when given, else at most ``limit``.

    Raises:
        FormatError: a malformed header, an unknown compression mode, a bad zstd stream or the wrong size.
    """
    if len(data) < 16:
        raise FormatError("a SEAL object is truncated")
    magic, header_size, _major, _minor, mode, _reserved, size = struct.unpack("<HBBBBHQ", data[:16])
    if magic != SEAL_MAGIC or header_size != 16 or size != len(data):
        raise FormatError("a SEAL object has a malformed header")
    limit = expected if expected is not None else limit
    if mode == COMPR_ZSTD:
        try:
            out = bytes(_zstd().ZstdDecompressor().decompress(data[16:], max_output_size=limit))
        except Exception as exc:  # zstandard.ZstdError, or output beyond the bound
            raise FormatError(f"a SEAL object does not decompress: {exc}") from exc
    elif mode == COMPR_NONE:
        out = data[16:]
    else:
        raise FormatError(f"a SEAL object uses compression mode {mode}; qsafe accepts none or zstd")
    if expected is not None and len(out) != expected:
        raise FormatError("a SEAL object has the wrong size for this context")
    return out


def seal_bytes(header: bytes, members: bytes) -> bytes:
    """An uncompressed SEAL object: ``header`` (any valid header of this SEAL version) re-sized around
    ``members``."""
    return header[:5] + struct.pack("<BHQ", COMPR_NONE, 0, 16 + len(members)) + members


class Spool:
    """One anonymous memory file per owner, for SEAL's path-based save and load."""

    def __init__(self) -> None:
        # plaintexts (a client's update) pass through it: an anonymous memory file where the OS has one, else an
        # unlinked file in tmpfs; never a named file on disk when either exists
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("qsafe-seal", getattr(os, "MFD_CLOEXEC", 0))
        else:  # pragma: no cover - Linux has memfd_create
            shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self.fd, name = tempfile.mkstemp(prefix="qsafe-seal-", dir=shm)
            os.unlink(name)
        self.path = f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()

    def save(self, obj: Any) -> bytes:
        """``obj.save`` (SEAL truncates the file), read back."""
        obj.save(self.path)
        return os.pread(self.fd, os.fstat(self.fd).st_size, 0)

    def load(self, obj: Any, context: Any, data: bytes) -> None:
        """``obj.load(context, ...)`` from ``data`` (SEAL validates it against ``context``).

        Raises:
            FormatError: SEAL refuses it.
        """
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        try:
            obj.load(context, self.path)
        except Exception as exc:  # the binding raises bare ValueError/RuntimeError
            raise FormatError(f"SEAL refuses the object: {exc}") from exc


class PlainCodec:
    """Plaintexts of one context from and to coefficient vectors (u64, each below the plain modulus)."""

    def __init__(self, context: Any, degree: int, spool: Spool) -> None:
        seal = seal_module()
        self.context, self.degree, self.spool = context, degree, spool
        reference = spool.save(seal.Plaintext(degree))
        members = body(reference, None)
        if len(members) != _PLAIN_PREFIX + 8 * degree:
            raise FormatError("TenSEAL produced a plaintext qsafe does not understand")
        self.header, self.prefix = reference[:16], members[:_PLAIN_PREFIX]
        self._head = seal_bytes(self.header, self.prefix + bytes(8 * degree))[:16 + _PLAIN_PREFIX]

    def load(self, plain: Any, coefficients: np.ndarray) -> None:
        """Fill ``plain`` with ``coefficients`` (``degree`` u64 values, each below the plain modulus)."""
        self.spool.load(plain, self.context, self._head + np.ascontiguousarray(coefficients, "<u8").tobytes())

    def read(self, plain: Any) -> np.ndarray:
        """The coefficients of ``plain`` (zero-extended to ``degree``), u64.

        Raises:
            FormatError: SEAL saved something qsafe does not understand.
        """
        members = body(self.spool.save(plain), None, limit=_PLAIN_PREFIX + 8 * self.degree)
        if len(members) < _PLAIN_PREFIX or members[48:53] != self.prefix[48:53]:
            raise FormatError("a decrypted plaintext has an unexpected layout")
        count = struct.unpack("<Q", members[32:40])[0]
        if count > self.degree or len(members) != _PLAIN_PREFIX + 8 * count:
            raise FormatError("a decrypted plaintext has an unexpected size")
        out = np.zeros(self.degree, dtype=np.uint64)
        out[:count] = np.frombuffer(members, dtype="<u8", offset=_PLAIN_PREFIX)
        return out
