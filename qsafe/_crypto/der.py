"""The little DER qsafe needs for composite keys: SubjectPublicKeyInfo and PKCS#8 (OneAsymmetricKey v1).

cryptography does not know the composite ML-DSA OIDs, so these two structures are encoded and parsed here,
strictly: definite minimal lengths, no trailing bytes, and the exact shape RFC 5280 / RFC 5958 give them with
absent algorithm parameters (as draft-ietf-lamps-pq-composite-sigs requires).
"""

from __future__ import annotations

import base64
import binascii
import re

from qsafe.errors import KeyFileError

_SEQUENCE, _INTEGER, _BIT_STRING, _OCTET_STRING, _OID = 0x30, 0x02, 0x03, 0x04, 0x06

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, value: bytes) -> bytes:
    """One DER element: tag, minimal definite length, value."""
    return bytes([tag]) + _length(len(value)) + value


def encode_oid(dotted: str) -> bytes:
    """DER OBJECT IDENTIFIER for a dotted-decimal OID string."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(_OID, bytes(body))


def oid_str(oid_der: bytes) -> str:
    """Dotted-decimal form of a DER OBJECT IDENTIFIER (for messages; ``?`` when malformed)."""
    try:
        body, _ = _read(oid_der, 0, _OID)
        first, arcs, value = body[0], [], 0
        for byte in body[1:]:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        head = [first // 40, first % 40] if first < 80 else [2, first - 80]
        return ".".join(str(a) for a in head + arcs)
    except (KeyFileError, IndexError):
        return "?"


def _read(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """Read one element with ``tag`` at ``pos``; return (value, next position)."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise KeyFileError(f"malformed DER: expected tag 0x{tag:02x} at offset {pos}")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data) or data[pos] == 0:
            raise KeyFileError("malformed DER: bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        if length < 0x80:
            raise KeyFileError("malformed DER: non-minimal length")
        pos += count
    if pos + length > len(data):
        raise KeyFileError("malformed DER: element runs past the end")
    return data[pos:pos + length], pos + length


def _whole(data: bytes, tag: int) -> bytes:
    value, end = _read(data, 0, tag)
    if end != len(data):
        raise KeyFileError("malformed DER: trailing bytes")
    return value


def encode_spki(oid: str, public_key: bytes) -> bytes:
    """SubjectPublicKeyInfo with absent parameters and ``public_key`` as the BIT STRING contents."""
    return tlv(_SEQUENCE, tlv(_SEQUENCE, encode_oid(oid)) + tlv(_BIT_STRING, b"\x00" + public_key))


def encode_pkcs8(oid: str, private_key: bytes) -> bytes:
    """OneAsymmetricKey v1 (PKCS#8) with absent parameters and ``private_key`` as the OCTET STRING contents."""
    body = tlv(_INTEGER, b"\x00") + tlv(_SEQUENCE, encode_oid(oid)) + tlv(_OCTET_STRING, private_key)
    return tlv(_SEQUENCE, body)


def algorithm_oid_der(der: bytes, *, private: bool) -> bytes:
    """The DER OID of a SPKI (``private=False``) or PKCS#8 structure, without full validation."""
    outer = _whole(der, _SEQUENCE)
    pos = 0
    if private:
        _, pos = _read(outer, pos, _INTEGER)
    alg, _ = _read(outer, pos, _SEQUENCE)
    oid, _ = _read(alg, 0, _OID)
    return tlv(_OID, oid)


def decode_spki(der: bytes, oid: str) -> bytes:
    """The public key bytes of a SPKI whose algorithm is exactly ``oid`` with absent parameters."""
    outer = _whole(der, _SEQUENCE)
    alg, pos = _read(outer, 0, _SEQUENCE)
    if alg != encode_oid(oid):
        raise KeyFileError("SubjectPublicKeyInfo: unexpected algorithm identifier or parameters")
    bits, pos = _read(outer, pos, _BIT_STRING)
    if pos != len(outer) or not bits or bits[0] != 0:
        raise KeyFileError("SubjectPublicKeyInfo: malformed subjectPublicKey")
    return bits[1:]


def decode_pkcs8(der: bytes, oid: str) -> bytes:
    """The private key bytes of a v1 PKCS#8 whose algorithm is exactly ``oid`` with absent parameters."""
    outer = _whole(der, _SEQUENCE)
    version, pos = _read(outer, 0, _INTEGER)
    if version != b"\x00":
        raise KeyFileError("PKCS#8: only version 0 (v1) is supported")
    alg, pos = _read(outer, pos, _SEQUENCE)
    if alg != encode_oid(oid):
        raise KeyFileError("PKCS#8: unexpected algorithm identifier or parameters")
    key, pos = _read(outer, pos, _OCTET_STRING)
    if pos != len(outer):
        raise KeyFileError("PKCS#8: attributes or public key fields are not supported")
    return key


def pem_encode(label: str, der: bytes) -> bytes:
    """RFC 7468 PEM, 64-character lines."""
    b64 = base64.b64encode(der)
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return b"".join([f"-----BEGIN {label}-----\n".encode(), *(ln + b"\n" for ln in lines),
                     f"-----END {label}-----\n".encode()])


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every PEM block in ``data`` as (label, DER), in order.

    Raises:
        KeyFileError: a block's base64 is invalid.
    """
    blocks = []
    for match in _PEM_RE.finditer(data):
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFileError(f"PEM block {match.group(1).decode()} has invalid base64") from exc
        blocks.append((match.group(1).decode(), der))
    return blocks
