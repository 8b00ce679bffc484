"""The byte layout shared by update, aggregate and context files, parsed with a bound on every length.

::

    magic                      (a fixed line, e.g. b"qsafe-fl-update/v1\\n")
    u32  header length  H      (big-endian; H <= 16 MiB)
    H    header: canonical JSON (UTF-8, sorted keys, no spaces)
    u32  blob count  n         (n <= 1,048,576)
    n x (u64 length L, L bytes)  (each L <= 1 GiB)
    u32  signature length S    (S <= 16 KiB; 0 = unsigned)
    S    signature
    (nothing after)
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from qsafe import _json, _limits
from qsafe.errors import FormatError

__all__ = ["Container", "canonical_json", "decode", "encode", "sha256_hex"]

MAX_HEADER = _limits.FL_CONTAINER_MAX_HEADER_BYTES
MAX_BLOBS = _limits.FL_CONTAINER_MAX_BLOBS
MAX_BLOB = _limits.FL_CONTAINER_MAX_BLOB_BYTES
MAX_SIGNATURE = _limits.FL_CONTAINER_MAX_SIGNATURE_BYTES


@dataclass(frozen=True)
class Container:
    """A parsed container: the exact header bytes (what is signed), the parsed header, blobs and signature."""

    magic: bytes
    header_bytes: bytes
    header: dict[str, Any]
    blobs: tuple[bytes, ...]
    signature: bytes


def canonical_json(data: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, compact separators, ASCII."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode(magic: bytes, header_bytes: bytes, blobs: list[bytes] | tuple[bytes, ...], signature: bytes = b"") -> bytes:
    """Lay out a container (the caller has already made ``header_bytes`` canonical)."""
    parts = [magic, struct.pack(">I", len(header_bytes)), header_bytes, struct.pack(">I", len(blobs))]
    for blob in blobs:
        parts += [struct.pack(">Q", len(blob)), blob]
    parts += [struct.pack(">I", len(signature)), signature]
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = memoryview(data), 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"the {self.what} is truncated")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def length(self, fmt: str, limit: int, field: str) -> int:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        if value > limit:
            raise FormatError(f"the {self.what}'s {field} ({value}) exceeds the limit {limit}")
        return int(value)


def decode(data: bytes, magic: bytes, what: str) -> Container:
    """Parse a container, refusing a wrong magic, oversized fields, bad JSON or trailing bytes.

    Raises:
        FormatError: any of those.
    """
    if not data.startswith(magic):
        raise FormatError(f"not a {what} (expected it to start with {magic!r})")
    reader = _Reader(data, what)
    reader.take(len(magic))
    header_bytes = reader.take(reader.length(">I", MAX_HEADER, "header length"))
    header = _json.loads(header_bytes, f"the {what}'s header", max_bytes=MAX_HEADER)
    if not isinstance(header, dict) or canonical_json(header) != header_bytes:
        raise FormatError(f"the {what}'s header is not a canonical JSON object")
    count = reader.length(">I", MAX_BLOBS, "blob count")
    blobs = tuple(reader.take(reader.length(">Q", MAX_BLOB, "blob length")) for _ in range(count))
    signature = reader.take(reader.length(">I", MAX_SIGNATURE, "signature length"))
    if reader.pos != len(data):
        raise FormatError(f"the {what} has {len(data) - reader.pos} unexpected trailing bytes")
    return Container(magic, header_bytes, header, blobs, signature)
