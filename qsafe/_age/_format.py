"""The age v1 header: strict parsing and canonical serialization (C2SP age.md).

The parser accepts exactly one encoding of every header (canonical unpadded base64, 64-column stanza bodies
ending in a short line, LF line endings), so the MAC computed over the bytes read equals the MAC of the
re-serialized header, and a malformed header is refused before any key material is touched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qsafe import _limits
from qsafe.errors import FormatError, IntegrityError

VERSION_LINE = b"age-encryption.org/v1\n"
INTRO = b"age-encryption.org/"
STANZA_PREFIX = b"-> "
MAC_PREFIX = b"---"
BODY_COLUMNS = 64
FILE_KEY_SIZE = 16
# Bounds keep a hostile header from exhausting memory: a hybrid stanza line is ~1.5 KiB.
MAX_LINE = _limits.AGE_HEADER_MAX_LINE
MAX_HEADER = _limits.AGE_HEADER_MAX_BYTES
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


@dataclass
class Stanza:
    """One recipient stanza: its arguments (the first is the type) and its binary body."""

    args: list[str]
    body: bytes = b""

    @property
    def type(self) -> str:
        return self.args[0]


@dataclass
class Header:
    """A parsed header: the stanzas, the MAC, and the exact bytes the MAC covers."""

    stanzas: list[Stanza] = field(default_factory=list)
    mac: bytes = b""
    mac_input: bytes = b""


def b64encode(data: bytes) -> str:
    """Canonical unpadded standard base64."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: bytes | str, what: str) -> bytes:
    """Decode unpadded base64, refusing padding, foreign characters and non-canonical trailing bits.

    Raises:
        FormatError: ``text`` is not the canonical unpadded encoding of some bytes.
    """
    raw = text.encode("ascii") if isinstance(text, str) else text
    if not set(raw) <= _B64_ALPHABET or len(raw) % 4 == 1:
        raise FormatError(f"invalid base64 in {what}")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise FormatError(f"invalid base64 in {what}") from exc
    if b64encode(data).encode("ascii") != raw:
        raise FormatError(f"non-canonical base64 in {what}")
    return data


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA-256 as age uses it for the header and payload keys."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    """HMAC-SHA-256 over the header up to and including ``---``, keyed from the file key."""
    return hmac.new(hkdf_sha256(file_key, b"", b"header"), mac_input, hashlib.sha256).digest()


def verify_mac(header: Header, file_key: bytes) -> None:
    """Raise :class:`IntegrityError` unless the header MAC matches ``file_key``."""
    if not hmac.compare_digest(header_mac(file_key, header.mac_input), header.mac):
        raise IntegrityError("the age header MAC does not verify: the header was modified")


def _arg_ok(arg: bytes) -> bool:
    return bool(arg) and all(0x21 <= c <= 0x7E for c in arg)


def encode_stanza(stanza: Stanza) -> bytes:
    """Serialize a stanza: argument line, then the body wrapped at 64 columns ending with a short line."""
    for arg in stanza.args:
        if not _arg_ok(arg.encode("ascii", "replace")):
            raise ValueError(f"invalid stanza argument {arg!r}")
    body = b64encode(stanza.body)
    lines = [body[i : i + BODY_COLUMNS] for i in range(0, len(body), BODY_COLUMNS)]
    if not lines or len(lines[-1]) == BODY_COLUMNS:
        lines.append("")
    return ("-> " + " ".join(stanza.args) + "\n" + "".join(line + "\n" for line in lines)).encode("ascii")


def encode_header(stanzas: list[Stanza], file_key: bytes) -> bytes:
    """Serialize a complete header with its MAC."""
    mac_input = VERSION_LINE + b"".join(encode_stanza(s) for s in stanzas) + MAC_PREFIX
    return mac_input + b" " + b64encode(header_mac(file_key, mac_input)).encode("ascii") + b"\n"


class _LineReader:
    """Reads LF-terminated header lines with a size bound, recording every byte for the MAC."""

    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.seen = bytearray()

    def line(self) -> bytes:
        data = self.src.readline(MAX_LINE)
        self.seen += data
        if len(self.seen) > MAX_HEADER:
            raise FormatError("the age header is too large")
        if not data.endswith(b"\n"):
            raise FormatError("the age header is truncated or has an overlong line")
        return data[:-1]


def _parse_stanza(first: bytes, reader: _LineReader) -> Stanza:
    args = first[len(STANZA_PREFIX) :].split(b" ")
    if not args or not all(_arg_ok(a) for a in args):
        raise FormatError("malformed stanza argument line in the age header")
    chunks: list[bytes] = []
    while True:
        line = reader.line()
        if len(line) > BODY_COLUMNS:
            raise FormatError("a stanza body line is longer than 64 columns")
        chunks.append(line)
        if len(line) < BODY_COLUMNS:
            break
    body = b64decode(b"".join(chunks), "a stanza body")
    return Stanza([a.decode("ascii") for a in args], body)


def parse_header(src: BinaryIO) -> Header:
    """Read and strictly parse an age header from ``src``, leaving it positioned at the payload nonce.

    Raises:
        FormatError: the data is not a canonical age v1 header.
    """
    reader = _LineReader(src)
    first = src.readline(len(VERSION_LINE))
    reader.seen += first
    if first != VERSION_LINE:
        if first.startswith(INTRO):
            raise FormatError("unsupported age format version", hint="this file needs a newer age implementation")
        raise FormatError("not an age file (no age-encryption.org/v1 header)")
    header = Header()
    while True:
        line = reader.line()
        if line.startswith(STANZA_PREFIX):
            header.stanzas.append(_parse_stanza(line, reader))
        elif line.startswith(MAC_PREFIX + b" "):
            header.mac = b64decode(line[len(MAC_PREFIX) + 1 :], "the header MAC")
            if len(header.mac) != 32:
                raise FormatError("the header MAC has the wrong length")
            header.mac_input = bytes(reader.seen[: -len(line) - 1]) + MAC_PREFIX
            break
        else:
            raise FormatError("malformed line in the age header")
    if not header.stanzas:
        raise FormatError("the age header has no recipient stanza")
    return header
