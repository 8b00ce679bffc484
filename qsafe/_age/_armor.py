"""ASCII armor for age files (C2SP age.md, "ASCII armor"): strict PEM-like encoding, streaming both ways.

Decoding accepts only what the spec allows: whitespace outside the armor, LF or CRLF line ends, 64-column
padded canonical base64 lines with one final shorter line, and no headers. Anything else is a FormatError.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import BinaryIO

from qsafe import _limits
from qsafe.errors import FormatError

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
COLUMNS = 64
_WHITESPACE = b" \t\r\n"
_MAX_WHITESPACE = _limits.AGE_ARMOR_MAX_WHITESPACE


class ByteSource:
    """A minimal reader (``read``/``readline``) over a prefix already read, then a block iterator or file."""

    def __init__(self, prefix: bytes, rest: BinaryIO | Iterator[bytes]) -> None:
        self.buf = bytearray(prefix)
        self.rest = rest
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        block = self.rest.read(1 << 16) if hasattr(self.rest, "read") else next(self.rest, b"")
        if not block:
            self.eof = True
            return False
        self.buf += block
        return True

    def read(self, size: int = -1) -> bytes:
        if not self.buf and size > 0 and hasattr(self.rest, "read"):
            return bytes(self.rest.read(size))  # fast path for the binary payload: no copy through buf
        while (size < 0 or len(self.buf) < size) and self._fill():
            pass
        n = len(self.buf) if size < 0 else min(size, len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def readinto(self, view: memoryview) -> int:
        """Read into ``view``: buffered bytes first, then straight from the file (no copy) when there is one."""
        if self.buf:
            n = min(len(view), len(self.buf))
            view[:n] = self.buf[:n]
            del self.buf[:n]
            return n
        # readinto1 (one system call) where the file has it: a buffered readinto loops in C until the view is full
        # and would not return to Python, where a SIGTERM's handler runs, while a pipe's writer pauses.
        reader = getattr(self.rest, "readinto1", None) or getattr(self.rest, "readinto", None)
        if reader is not None:
            return int(reader(view) or 0)
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                return self.read(end + 1)
            if limit >= 0 and len(self.buf) >= limit:
                return self.read(limit)
            if not self._fill():
                return self.read(len(self.buf))


def sniff(src: BinaryIO) -> tuple[bool, ByteSource]:
    """Tell an armored file from a binary one without consuming input.

    Returns:
        ``(armored, reader)`` where ``reader`` yields the same bytes as ``src`` from the start.
    """
    head = b""
    while len(head) < _MAX_WHITESPACE + len(BEGIN):
        block = src.read(len(BEGIN))
        if not block:
            break
        head += block
        stripped = head.lstrip(_WHITESPACE)
        if len(stripped) >= len(BEGIN) or (stripped and not BEGIN.startswith(stripped[: len(BEGIN)])):
            break
    return head.lstrip(_WHITESPACE).startswith(b"-----BEGIN"), ByteSource(head, src)


def _line(src: ByteSource) -> tuple[bytes, bool]:
    raw = src.readline(COLUMNS + 3)
    ended = raw.endswith(b"\n")
    line = raw[:-1] if ended else raw
    if line.endswith(b"\r"):
        line = line[:-1]
    return line, ended


def _decode_line(line: bytes) -> bytes:
    if not 0 < len(line) <= COLUMNS or len(line) % 4:
        raise FormatError("malformed armor line (length)")
    try:
        data = base64.b64decode(line, validate=True)
    except binascii.Error as exc:
        raise FormatError("invalid base64 in the armor") from exc
    if base64.b64encode(data) != line:
        raise FormatError("non-canonical base64 in the armor")
    return data


def _skip_whitespace(src: ByteSource) -> None:
    skipped = 0
    while True:
        block = src.read(1)
        if not block:
            return
        if block not in (b" ", b"\t", b"\r", b"\n"):
            src.buf[:0] = block
            return
        skipped += 1
        if skipped > _MAX_WHITESPACE:
            raise FormatError("too much whitespace around the armor")


def dearmor(src: ByteSource) -> Iterator[bytes]:
    """Yield the binary age file inside an armored one.

    Raises:
        FormatError: the armor is malformed (wrong type line, headers, bad lines, trailing data).
    """
    _skip_whitespace(src)
    line, ended = _line(src)
    if line != BEGIN or not ended:
        raise FormatError("the armor does not start with -----BEGIN AGE ENCRYPTED FILE-----")
    short_seen = False
    while True:
        line, ended = _line(src)
        if line == END:
            break
        if not ended:
            raise FormatError("the armor has no -----END AGE ENCRYPTED FILE----- line")
        if short_seen:
            raise FormatError("a short armor line is followed by more data")
        data = _decode_line(line)
        short_seen = len(line) < COLUMNS or line.endswith(b"=")
        yield data
    _skip_whitespace(src)
    if src.read(1):
        raise FormatError("unexpected data after the armor")


class ArmorWriter:
    """Wraps a binary writer: ``write`` encodes to armor lines, ``close`` writes the last line and END."""

    def __init__(self, dst: BinaryIO) -> None:
        self.dst = dst
        self.pending = bytearray()
        dst.write(BEGIN + b"\n")

    def write(self, data: bytes | memoryview) -> int:
        self.pending += data
        whole = len(self.pending) - len(self.pending) % 48
        if whole:
            self._emit(bytes(self.pending[:whole]))
            del self.pending[:whole]
        return len(data)

    def _emit(self, data: bytes) -> None:
        text = base64.b64encode(data)
        self.dst.write(b"".join(text[i : i + COLUMNS] + b"\n" for i in range(0, len(text), COLUMNS)))

    def close(self) -> None:
        if self.pending:
            self._emit(bytes(self.pending))
        self.dst.write(END + b"\n")
